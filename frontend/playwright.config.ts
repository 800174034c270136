import { defineConfig } from '@playwright/test'

// Debian's Chromium, never a downloaded browser (this machine reaches no browser CDN), with the
// flags that keep it off the network (shared with scripts/measure-load.mjs).
import chromiumFlags from './e2e/chromium-flags.json' with { type: 'json' }

export default defineConfig({
  testDir: './e2e',
  testMatch: '**/*.spec.ts',
  // One server for the suite (global-setup.ts); each test registers its own users and rooms.
  globalSetup: './e2e/global-setup.ts',
  fullyParallel: false,
  workers: 1,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  retries: 0,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  outputDir: 'test-results',
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: process.env.CODESYNC_E2E_CHROMIUM ?? '/usr/bin/chromium', args: chromiumFlags },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    actionTimeout: 15_000,
  },
})
