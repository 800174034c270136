import type { WebSocketRoute } from '@playwright/test'
import {
  createFile,
  createRoom,
  editorText,
  expect,
  inviteCode,
  newPerson,
  openFile,
  screenshot,
  test,
  typeInEditor,
  unique,
  waitUntilSaved,
} from './helpers'

test('a dropped connection shows unsaved edits, and offline edits merge on reconnect', async ({ browser, baseURL }, testInfo) => {
  const alice = await newPerson(browser, baseURL!, 'roam')
  const bob = await newPerson(browser, baseURL!, 'desk', 'light')

  // Alice's file sockets go through a switch the test controls: a network that can fail.
  let networkDown = false
  const open: { page: WebSocketRoute; server: WebSocketRoute }[] = []
  await alice.page.routeWebSocket(/\/ws\/files\//, (page) => {
    if (networkDown) {
      void page.close({ code: 1001, reason: 'network down (test)' })
      return
    }
    open.push({ page, server: page.connectToServer() })
  })

  await createRoom(alice.page, unique('Train '))
  await createFile(alice.page, 'draft.txt')
  await typeInEditor(alice.page, 'line one')
  await alice.page.keyboard.press('Enter')
  await typeInEditor(alice.page, 'line two')
  await waitUntilSaved(alice.page)
  const code = await inviteCode(alice.page)
  await bob.page.goto(`/join/${code}`)
  await openFile(bob.page, 'draft.txt')

  // The connection drops; Alice keeps typing; Bob edits another line meanwhile.
  networkDown = true
  for (const socket of open.splice(0)) {
    await socket.server.close()
    await socket.page.close({ code: 1001, reason: 'network down (test)' })
  }
  await typeInEditor(alice.page, ' written offline')
  await expect(alice.page.getByTestId('connection-status')).toContainText('unsaved edits')
  await bob.page.locator('[data-testid="editor"] .view-lines').click()
  await bob.page.keyboard.press('Control+Home')
  await bob.page.keyboard.press('End')
  await bob.page.keyboard.type(' (bob)')
  await expect(alice.page.getByTestId('connection-status')).toHaveText('Offline · unsaved edits kept here', { timeout: 20_000 })
  await screenshot(alice.page, testInfo, 'offline-with-unsaved-edits')
  expect(await editorText(bob.page)).not.toContain('written offline')

  // Leaving the room meanwhile loses nothing: back in it, the offline edit is still there.
  await alice.page.getByRole('link', { name: 'CodeSync, your rooms' }).click()
  await expect(alice.page.getByRole('heading', { name: 'Rooms', exact: true })).toBeVisible()
  await alice.page.goBack()
  await expect.poll(() => editorText(alice.page)).toContain('line two written offline')

  // Back online: both edits merge, on both sides, and Alice's are saved.
  networkDown = false
  await waitUntilSaved(alice.page)
  for (const page of [alice.page, bob.page]) {
    await expect.poll(() => editorText(page)).toContain('line one (bob)')
    await expect.poll(() => editorText(page)).toContain('line two written offline')
  }
  await screenshot(alice.page, testInfo, 'reconnected-and-merged')
  await alice.context.close()
  await bob.context.close()
})
