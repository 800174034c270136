import { describe, expect, it } from 'vitest'
import { closeTab, openTab, type TabState } from './ui'

describe('tabs', () => {
  it('opens each file once and shows it', () => {
    let state: TabState = { tabs: {}, active: {} }
    state = openTab(state, 'r', 'a')
    state = openTab(state, 'r', 'b')
    state = openTab(state, 'r', 'a')
    expect(state).toEqual({ tabs: { r: ['a', 'b'] }, active: { r: 'a' } })
  })

  it('closing the shown tab shows its right neighbour, else its left one', () => {
    let state: TabState = { tabs: { r: ['a', 'b', 'c'] }, active: { r: 'b' } }
    state = closeTab(state, 'r', 'b')
    expect(state.active.r).toBe('c')
    state = closeTab(state, 'r', 'c')
    expect(state.active.r).toBe('a')
    state = closeTab(state, 'r', 'a')
    expect(state).toEqual({ tabs: { r: [] }, active: { r: null } })
  })

  it('closing another tab keeps the shown one', () => {
    const state = closeTab({ tabs: { r: ['a', 'b'] }, active: { r: 'a' } }, 'r', 'b')
    expect(state).toEqual({ tabs: { r: ['a'] }, active: { r: 'a' } })
  })
})
