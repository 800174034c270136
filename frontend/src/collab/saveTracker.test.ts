import { describe, expect, it } from 'vitest'
import { SaveTracker } from './saveTracker'

const update = new Uint8Array([0, 2, 1, 0])
const step2 = new Uint8Array([0, 1, 1, 0])
const step1 = new Uint8Array([0, 0, 1, 0])
const awareness = new Uint8Array([1, 3, 0])

describe('SaveTracker', () => {
  it('is saved once the server acknowledges the message that carried the last edit', () => {
    const tracker = new SaveTracker()
    tracker.connectionOpened()
    tracker.messageSent(step1)
    tracker.messageSent(step2) // the answer to the server's step 1, counted by the server
    expect(tracker.hasUnsavedEdits).toBe(false)
    tracker.localChange()
    tracker.messageSent(update)
    tracker.localChange()
    tracker.messageSent(update)
    tracker.messageSent(awareness)
    expect(tracker.hasUnsavedEdits).toBe(true)
    tracker.savedThrough(2) // step 2 and the first update
    expect(tracker.hasUnsavedEdits).toBe(true)
    tracker.savedThrough(3)
    expect(tracker.hasUnsavedEdits).toBe(false)
  })

  it('keeps offline edits unsaved until a new connection sends and stores them', () => {
    const tracker = new SaveTracker()
    tracker.connectionOpened()
    tracker.localChange()
    tracker.messageSent(update)
    // The connection drops before the acknowledgement; two more edits happen offline.
    tracker.localChange()
    tracker.localChange()
    expect(tracker.hasUnsavedEdits).toBe(true)
    // Reconnected: counts restart; the step 2 answer carries everything.
    tracker.connectionOpened()
    tracker.messageSent(step2)
    tracker.savedThrough(1)
    expect(tracker.hasUnsavedEdits).toBe(false)
  })

  it('ignores acknowledgements beyond what was sent and never goes backwards', () => {
    const tracker = new SaveTracker()
    tracker.connectionOpened()
    tracker.localChange()
    tracker.savedThrough(5) // nothing was sent: the edit is not saved
    expect(tracker.hasUnsavedEdits).toBe(true)
    tracker.messageSent(update)
    tracker.savedThrough(1)
    tracker.savedThrough(0)
    expect(tracker.hasUnsavedEdits).toBe(false)
  })

  it('counts everything as unsaved once the server refused an edit (its counts no longer line up)', () => {
    const tracker = new SaveTracker()
    tracker.connectionOpened()
    tracker.localChange()
    tracker.messageSent(update)
    tracker.refused()
    tracker.savedThrough(1)
    expect(tracker.hasUnsavedEdits).toBe(true)
  })

  it('notifies subscribers', () => {
    const tracker = new SaveTracker()
    let calls = 0
    const unsubscribe = tracker.subscribe(() => (calls += 1))
    tracker.localChange()
    unsubscribe()
    tracker.localChange()
    expect(calls).toBe(1)
  })
})
