import {
  createFile,
  createRoom,
  editorText,
  expect,
  inviteCode,
  newPerson,
  screenshot,
  test,
  typeInEditor,
  unique,
  waitUntilSaved,
} from './helpers'

test('a viewer joins by invite link, sees edits live, and cannot type', async ({ browser, baseURL }, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'owner')
  const viewer = await newPerson(browser, baseURL!, 'viewer', 'light')

  const roomName = unique('Review ')
  await createRoom(owner.page, roomName)
  await createFile(owner.page, 'notes.md')
  await typeInEditor(owner.page, 'first line ')
  await waitUntilSaved(owner.page)

  // The invite link joins when opened.
  const code = await inviteCode(owner.page)
  await viewer.page.goto(`/join/${code}`)
  await expect(viewer.page.getByTestId('room-name')).toHaveText(roomName)

  // The owner makes the new member a viewer in the members panel.
  await owner.page.getByRole('button', { name: 'Members' }).click()
  const row = owner.page.getByTestId('member-row').filter({ hasText: viewer.name })
  await row.getByLabel(`Role of ${viewer.name}`).selectOption('viewer')
  await expect(row.getByLabel(`Role of ${viewer.name}`)).toHaveValue('viewer')
  await owner.page.getByRole('button', { name: 'Done' }).click()

  // The viewer's page learns the role and shows the read-only banner.
  await viewer.page.reload()
  await expect(viewer.page.getByTestId('read-only-banner')).toBeVisible()
  await viewer.page.getByRole('navigation', { name: 'Files' }).getByRole('button', { name: 'notes.md' }).click()
  await waitUntilSaved(viewer.page)
  await expect.poll(() => editorText(viewer.page)).toContain('first line')

  // Live: the owner's typing reaches the viewer.
  await typeInEditor(owner.page, 'second thought')
  await expect.poll(() => editorText(viewer.page)).toContain('second thought')

  // The viewer cannot type: nothing changes on either side.
  const before = await editorText(viewer.page)
  await typeInEditor(viewer.page, 'VIEWER WAS HERE')
  await viewer.page.waitForTimeout(1000)
  expect(await editorText(viewer.page)).toBe(before)
  expect(await editorText(owner.page)).not.toContain('VIEWER WAS HERE')
  await screenshot(viewer.page, testInfo, 'viewer-read-only')

  await owner.context.close()
  await viewer.context.close()
})

test('a public room is listed to everyone and readable, read only, by those who are not members', async ({
  browser,
  baseURL,
}, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'open')
  const reader = await newPerson(browser, baseURL!, 'reader', 'light')
  const roomName = unique('Open source ')
  await createRoom(owner.page, roomName, 'public')
  await createFile(owner.page, 'README.md')
  await typeInEditor(owner.page, '# Welcome, readers')
  await waitUntilSaved(owner.page)

  await reader.page.reload()
  const publicRooms = reader.page.getByRole('region', { name: /Public rooms/ })
  await publicRooms.getByRole('link', { name: new RegExp(roomName) }).click()
  await expect(reader.page.getByTestId('read-only-banner')).toContainText('read-only for you')
  await reader.page.getByRole('navigation', { name: 'Files' }).getByRole('button', { name: 'README.md' }).click()
  await expect.poll(() => editorText(reader.page)).toContain('# Welcome, readers')
  await expect(reader.page.getByRole('button', { name: 'New file' })).toHaveCount(0)
  await expect(reader.page.getByLabel('Message the room')).toHaveCount(0)
  await screenshot(reader.page, testInfo, 'public-room-reader')
  await owner.context.close()
  await reader.context.close()
})
