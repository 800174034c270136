// The small set of controls every page uses, so they look and behave the same everywhere.

import { useEffect, useRef, type ButtonHTMLAttributes, type InputHTMLAttributes, type ReactNode } from 'react'

type ButtonVariant = 'primary' | 'secondary' | 'ghost' | 'danger'

const buttonStyles: Record<ButtonVariant, string> = {
  primary: 'bg-accent text-accent-fg hover:brightness-110 font-medium',
  secondary: 'bg-raised text-fg border border-line hover:bg-hover',
  ghost: 'text-muted hover:text-fg hover:bg-hover',
  danger: 'bg-danger text-white hover:brightness-110 font-medium dark:text-canvas',
}

export function Button({
  variant = 'secondary',
  busy = false,
  className = '',
  children,
  disabled,
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: ButtonVariant; busy?: boolean }) {
  return (
    <button
      type="button"
      {...rest}
      disabled={disabled || busy}
      aria-busy={busy || undefined}
      className={`inline-flex items-center justify-center gap-1.5 rounded-md px-3 py-1.5 text-sm transition disabled:cursor-not-allowed disabled:opacity-50 ${buttonStyles[variant]} ${className}`}
    >
      {busy && <Spinner small />}
      {children}
    </button>
  )
}

export function IconButton({ label, className = '', children, ...rest }: ButtonHTMLAttributes<HTMLButtonElement> & { label: string }) {
  return (
    <button
      type="button"
      aria-label={label}
      title={label}
      {...rest}
      className={`inline-flex h-7 w-7 items-center justify-center rounded-md text-muted transition hover:bg-hover hover:text-fg disabled:opacity-40 ${className}`}
    >
      {children}
    </button>
  )
}

export function TextField({
  label,
  hint,
  error,
  id,
  className = '',
  ...rest
}: InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string; error?: string | null; id: string }) {
  return (
    <div className={`flex flex-col gap-1.5 ${className}`}>
      <label htmlFor={id} className="text-xs font-medium text-muted">
        {label}
      </label>
      <input
        id={id}
        {...rest}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-error` : hint ? `${id}-hint` : undefined}
        className="rounded-md border border-line bg-canvas px-3 py-2 text-sm text-fg placeholder:text-faint focus:border-accent focus:outline-none focus-visible:outline-none focus:ring-2 focus:ring-accent/30"
      />
      {hint && !error && (
        <p id={`${id}-hint`} className="text-xs text-faint">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} className="text-xs text-danger">
          {error}
        </p>
      )}
    </div>
  )
}

export function Spinner({ small = false, label }: { small?: boolean; label?: string }) {
  const size = small ? 'h-3.5 w-3.5 border-[1.5px]' : 'h-5 w-5 border-2'
  return (
    <span role={label ? 'status' : undefined} className="inline-flex items-center gap-2 text-muted">
      <span className={`${size} animate-spin rounded-full border-current border-t-transparent`} aria-hidden="true" />
      {label && <span className="text-sm">{label}</span>}
    </span>
  )
}

export function Alert({ tone = 'danger', children }: { tone?: 'danger' | 'info' | 'warn'; children: ReactNode }) {
  const styles = {
    danger: 'border-danger/40 bg-danger-soft text-danger',
    info: 'border-accent/30 bg-accent-soft text-fg',
    warn: 'border-warn/40 bg-warn/10 text-warn',
  }[tone]
  return (
    <div role={tone === 'danger' ? 'alert' : 'status'} className={`rounded-md border px-3 py-2 text-sm ${styles}`}>
      {children}
    </div>
  )
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="flex flex-col items-center justify-center gap-2 px-6 py-10 text-center">
      <p className="text-sm font-medium text-fg">{title}</p>
      {children && <div className="max-w-sm text-sm text-muted">{children}</div>}
    </div>
  )
}

export function ErrorState({ message, onRetry }: { message: string; onRetry?: () => void }) {
  return (
    <div role="alert" className="flex flex-col items-center justify-center gap-3 px-6 py-10 text-center">
      <p className="text-sm text-danger">{message}</p>
      {onRetry && (
        <Button onClick={onRetry} variant="secondary">
          Try again
        </Button>
      )}
    </div>
  )
}

/**
 * A modal on the native <dialog>: the browser traps focus, closes it on Escape and makes the
 * rest of the page inert.
 */
export function Dialog({
  open,
  title,
  onClose,
  children,
  labelledBy,
}: {
  open: boolean
  title: string
  onClose: () => void
  children: ReactNode
  labelledBy?: string
}) {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current
    if (!dialog || !open) return
    // Whatever had the focus gets it back when the dialog goes, even if it unmounts with it.
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null
    if (!dialog.open) dialog.showModal()
    return () => {
      if (dialog.open) dialog.close()
      if (opener?.isConnected) opener.focus()
    }
  }, [open])
  const titleId = labelledBy ?? `dialog-${title.replace(/\W+/g, '-').toLowerCase()}`
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onClose={onClose}
      onCancel={(event) => {
        event.preventDefault()
        onClose()
      }}
      className="m-auto w-[min(92vw,28rem)] rounded-xl border border-line bg-raised p-0 text-fg shadow-2xl backdrop:bg-black/50 backdrop:backdrop-blur-[2px]"
    >
      {open && (
        <div className="flex flex-col gap-4 p-5">
          <h2 id={titleId} className="text-base font-semibold">
            {title}
          </h2>
          {children}
        </div>
      )}
    </dialog>
  )
}

export function Avatar({ name, colour, size = 24, ring = false }: { name: string; colour: string; size?: number; ring?: boolean }) {
  return (
    <span
      aria-hidden="true"
      className={`inline-flex shrink-0 select-none items-center justify-center rounded-full font-semibold text-[#0b0d12] ${ring ? 'ring-2 ring-panel' : ''}`}
      style={{ width: size, height: size, backgroundColor: colour, fontSize: Math.max(9, size * 0.42) }}
    >
      {name.slice(0, 1).toUpperCase()}
    </span>
  )
}
