import {
  createFile,
  createRoom,
  editorText,
  expect,
  inviteCode,
  newPerson,
  openFile,
  remoteCursorLabels,
  screenshot,
  sendChat,
  test,
  typeInEditor,
  unique,
  waitUntilSaved,
} from './helpers'

test('two people edit one file at once, see each other, chat, and keep the content across a reload', async ({
  browser,
  baseURL,
}, testInfo) => {
  const alice = await newPerson(browser, baseURL!, 'alice')
  const bob = await newPerson(browser, baseURL!, 'bob', 'light')

  // Alice creates a room and a file; Bob joins with the invite code.
  const roomName = unique('Pairing ')
  await createRoom(alice.page, roomName)
  await createFile(alice.page, 'main.py')
  const code = await inviteCode(alice.page)
  await bob.page.getByLabel('Invite code or link').fill(code)
  await bob.page.getByRole('button', { name: 'Join', exact: true }).click()
  await expect(bob.page.getByTestId('room-name')).toHaveText(roomName)
  await openFile(bob.page, 'main.py')

  // Both see both in the room's presence list.
  for (const person of [alice, bob]) {
    for (const other of [alice, bob]) {
      await expect(person.page.getByTestId('presence').locator(`[data-username="${other.name}"]`)).toBeVisible()
    }
  }

  // Two lines, then both type at the same time, each on their own line (typing at one
  // position at once interleaves the letters, as it should).
  await typeInEditor(alice.page, '# alice was here')
  await alice.page.keyboard.press('Enter')
  await expect.poll(() => editorText(bob.page)).toContain('# alice was here')
  await typeInEditor(bob.page, '# bob too')
  await expect.poll(() => editorText(alice.page)).toContain('# bob too')
  // Alice is told that Bob is typing in this file, and sees him on it in the file list.
  await expect(alice.page.getByTestId('typing-indicator')).toContainText(`${bob.name} is typing`)
  await Promise.all([typeInEditor(alice.page, ', and typed more', 'end-of-first-line'), typeInEditor(bob.page, ' at the same time', 'end')])
  for (const person of [alice, bob]) {
    for (const phrase of ['# alice was here, and typed more', '# bob too at the same time']) {
      await expect.poll(() => editorText(person.page)).toContain(phrase)
    }
  }
  // Converged: the same text on both sides.
  await expect.poll(async () => (await editorText(alice.page)) === (await editorText(bob.page))).toBe(true)

  // Each sees the other's cursor, labelled with the other's name.
  await expect.poll(() => remoteCursorLabels(alice.page)).toContain(bob.name)
  await expect.poll(() => remoteCursorLabels(bob.page)).toContain(alice.name)
  // A selection shows too, in the selecting user's colour: Bob selects everything.
  await bob.page.keyboard.press('Control+A')
  await expect.poll(async () => (await alice.page.locator('.yRemoteSelection').first().boundingBox())?.width ?? 0).toBeGreaterThan(100)
  await bob.page.keyboard.press('Control+End')

  // Chat both ways.
  await sendChat(alice.page, `hello ${bob.name}`)
  await expect(bob.page.getByTestId('chat-messages')).toContainText(`hello ${bob.name}`)
  await sendChat(bob.page, 'hi alice, looks good')
  await expect(alice.page.getByTestId('chat-messages')).toContainText('hi alice, looks good')

  await waitUntilSaved(alice.page)
  await waitUntilSaved(bob.page)
  await screenshot(alice.page, testInfo, 'alice-editing-with-bob')
  await screenshot(bob.page, testInfo, 'bob-editing-with-alice')

  // A file Alice creates appears in Bob's list without a reload (her presence names it).
  await createFile(alice.page, 'utils.py')
  await expect(
    bob.page.getByRole('navigation', { name: 'Files' }).getByRole('button', { name: 'utils.py', exact: false }).first(),
  ).toBeVisible()
  await alice.page.getByRole('tab', { name: 'main.py' }).click()
  await waitUntilSaved(alice.page)

  // A reload keeps the content, and the chat history comes back.
  const before = await editorText(bob.page)
  await bob.page.reload()
  await expect(bob.page.getByRole('tab', { name: 'main.py' })).toHaveAttribute('aria-selected', 'true')
  await waitUntilSaved(bob.page)
  await expect.poll(() => editorText(bob.page)).toBe(before)
  await expect(bob.page.getByTestId('chat-messages')).toContainText(`hello ${bob.name}`)
  await screenshot(bob.page, testInfo, 'bob-after-reload')

  await alice.context.close()
  await bob.context.close()
})
