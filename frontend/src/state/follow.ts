// Following a collaborator: whom this tab follows, if anyone. Built on presence (which file each
// person has open) and each file's awareness (where their cursor is); no server state.

import { create } from 'zustand'

export interface Followed {
  userId: string
  username: string
}

interface FollowState {
  following: Followed | null
  follow: (person: Followed) => void
  stop: () => void
}

export const useFollow = create<FollowState>()((set) => ({
  following: null,
  follow: (person) => set({ following: person }),
  stop: () => set({ following: null }),
}))
