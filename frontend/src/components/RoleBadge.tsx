import type { Role } from '../api/types'

const styles: Record<Role, string> = {
  owner: 'bg-accent-soft text-accent',
  editor: 'bg-ok/10 text-ok',
  viewer: 'bg-hover text-muted',
}

export function RoleBadge({ role }: { role: Role }) {
  return <span className={`shrink-0 rounded px-1.5 py-0.5 text-[11px] font-medium capitalize ${styles[role]}`}>{role}</span>
}
