// Hocuspocus as it comes: in memory, no extensions. PORT and HOST from the environment.
import { Server } from '@hocuspocus/server'

const server = new Server({ port: Number(process.env.PORT), address: process.env.HOST || '127.0.0.1', quiet: true })
await server.listen()
