import {
  createFile,
  createRoom,
  editorText,
  expect,
  inviteCode,
  joinRoom,
  newPerson,
  openFile,
  screenshot,
  test,
  typeInEditor,
  unique,
} from './helpers'

test('versions are saved with Ctrl+S, compared in the diff editor, and a restore reaches the other browser at once', async ({
  browser,
  baseURL,
}, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'historian')
  const peer = await newPerson(browser, baseURL!, 'witness', 'light')
  const roomName = unique('History ')
  await createRoom(owner.page, roomName)
  await createFile(owner.page, 'main.py')
  await typeInEditor(owner.page, "print('version one')")
  await owner.page.keyboard.press('Control+S')
  await expect(owner.page.getByTestId('save-notice')).toHaveText('Saved as v1')

  const code = await inviteCode(owner.page)
  await joinRoom(peer.page, code, roomName)
  await openFile(peer.page, 'main.py')
  await expect.poll(() => editorText(peer.page)).toContain("print('version one')")

  // A second line, saved as version 2 with a message from the panel.
  await typeInEditor(owner.page, "\nprint('version two')")
  await expect.poll(() => editorText(peer.page)).toContain("print('version two')")
  await owner.page.getByRole('button', { name: 'Show the history' }).click()
  await owner.page.getByLabel('Save main.py as a version').fill('the second line')
  await owner.page.getByRole('button', { name: 'Save', exact: true }).click()
  const list = owner.page.getByTestId('version-list')
  await expect(list.getByTestId('version-2')).toContainText('the second line')
  // The first line gained its line break, and a line came after it.
  await expect(list.getByTestId('version-2')).toContainText('+2 −1')
  await expect(list.getByTestId('version-1')).toContainText('Saved')

  // Version 1 beside the file now, in Monaco's diff editor.
  await list.getByTestId('version-1').click()
  const diff = owner.page.getByTestId('version-diff')
  await expect(diff).toBeVisible()
  await expect(diff.locator('.editor.modified .view-lines')).toContainText("print('version two')")
  await expect(diff.locator('.editor.original .view-lines')).toContainText("print('version one')")
  await screenshot(owner.page, testInfo, 'version-diff')

  // Restore it, after a confirmation: both browsers show version 1's content, and it is version 3.
  await owner.page.getByTestId('restore-version').click()
  await expect(owner.page.getByRole('dialog')).toContainText('Restore version 1?')
  await owner.page.getByTestId('confirm-restore').click()
  await expect(diff).toBeHidden()
  for (const person of [owner, peer]) {
    await expect.poll(() => editorText(person.page)).not.toContain('version two')
    await expect.poll(() => editorText(person.page)).toContain("print('version one')")
  }
  await expect(list.getByTestId('version-3')).toContainText('Restored')
  await expect(list.getByTestId('version-3')).toContainText('Restored version 1')
  await screenshot(peer.page, testInfo, 'restored-in-the-other-browser')

  // The room's activity log tells what happened.
  await owner.page.getByRole('tab', { name: 'activity' }).click()
  await expect(owner.page.getByTestId('room-activity')).toContainText('restored an old version')
  await expect(owner.page.getByTestId('room-activity')).toContainText(`${peer.name} joined with the invite code`)

  await owner.context.close()
  await peer.context.close()
})
