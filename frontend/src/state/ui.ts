// Client-only state: the theme, and the tabs open in each room.

import { create } from 'zustand'
import { createJSONStorage, persist } from 'zustand/middleware'

export type Theme = 'dark' | 'light'

const THEME_KEY = 'codesync.theme'

function initialTheme(): Theme {
  if (typeof document === 'undefined') return 'dark'
  return document.documentElement.classList.contains('dark') ? 'dark' : 'light'
}

interface UiState {
  theme: Theme
  /** Open tabs per room, in order. */
  tabs: Record<string, string[]>
  /** The shown file per room. */
  active: Record<string, string | null>
  toggleTheme: () => void
  openFile: (roomId: string, fileId: string) => void
  closeFile: (roomId: string, fileId: string) => void
  /** Drops tabs of files that no longer exist (deleted by anyone). */
  keepOnly: (roomId: string, fileIds: Set<string>) => void
}

export const useUi = create<UiState>()(
  persist(
    (set) => ({
      theme: initialTheme(),
      tabs: {},
      active: {},
      toggleTheme: () =>
        set((state) => {
          const theme: Theme = state.theme === 'dark' ? 'light' : 'dark'
          document.documentElement.classList.toggle('dark', theme === 'dark')
          try {
            localStorage.setItem(THEME_KEY, theme)
          } catch {
            // storage disabled: the choice lasts for this page
          }
          return { theme }
        }),
      openFile: (roomId, fileId) => set((state) => openTab(state, roomId, fileId)),
      closeFile: (roomId, fileId) => set((state) => closeTab(state, roomId, fileId)),
      keepOnly: (roomId, fileIds) =>
        set((state) => {
          const tabs = (state.tabs[roomId] ?? []).filter((id) => fileIds.has(id))
          const current = state.active[roomId] ?? null
          const active = current !== null && fileIds.has(current) ? current : (tabs[tabs.length - 1] ?? null)
          if (tabs.length === (state.tabs[roomId] ?? []).length && active === current) return state
          return { tabs: { ...state.tabs, [roomId]: tabs }, active: { ...state.active, [roomId]: active } }
        }),
    }),
    {
      // Open tabs survive a reload of this tab (the shown file is in the address).
      name: 'codesync.tabs',
      storage: createJSONStorage(() => sessionStorage),
      partialize: (state) => ({ tabs: state.tabs }),
    },
  ),
)

export type TabState = Pick<UiState, 'tabs' | 'active'>

export function openTab(state: TabState, roomId: string, fileId: string): TabState {
  const tabs = state.tabs[roomId] ?? []
  return {
    tabs: tabs.includes(fileId) ? state.tabs : { ...state.tabs, [roomId]: [...tabs, fileId] },
    active: { ...state.active, [roomId]: fileId },
  }
}

/** Closing the shown tab shows its right neighbour, else its left one, as editors do. */
export function closeTab(state: TabState, roomId: string, fileId: string): TabState {
  const tabs = state.tabs[roomId] ?? []
  const index = tabs.indexOf(fileId)
  if (index === -1) return state
  const remaining = tabs.filter((id) => id !== fileId)
  const current = state.active[roomId] ?? null
  const active = current === fileId ? (remaining[index] ?? remaining[index - 1] ?? null) : current
  return { tabs: { ...state.tabs, [roomId]: remaining }, active: { ...state.active, [roomId]: active } }
}
