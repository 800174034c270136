import {
  createFile,
  createRoom,
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

test('files are renamed and deleted from the tree; an open editor learns of the deletion', async ({ browser, baseURL }, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'tree')
  const editor = await newPerson(browser, baseURL!, 'leaf', 'light')
  await createRoom(owner.page, unique('Tree '))
  await createFile(owner.page, 'app.js')
  await typeInEditor(owner.page, 'const answer = 42')
  await waitUntilSaved(owner.page)
  await createFile(owner.page, 'scratch.py')
  const code = await inviteCode(owner.page)
  await editor.page.goto(`/join/${code}`)
  await openFile(editor.page, 'scratch.py')

  // Highlighting follows the language: app.js is JavaScript, its keyword gets a token colour.
  await owner.page.getByRole('tab', { name: 'app.js' }).click()
  await expect(
    owner.page.locator('[data-testid="editor"] .view-lines span.mtk1, [data-testid="editor"] .view-lines span[class^="mtk"]').first(),
  ).toBeVisible()
  await expect(owner.page.getByText('javascript', { exact: true })).toBeVisible()

  // Rename with the keyboard (F2 on the focused row), and the name changes for both.
  const tree = owner.page.getByRole('navigation', { name: 'Files' })
  await tree.getByRole('button', { name: 'app.js', exact: false }).first().focus()
  await owner.page.keyboard.press('F2')
  await owner.page.getByLabel('New name').fill('main.js')
  await owner.page.getByRole('button', { name: 'Rename', exact: true }).click()
  await expect(tree.getByRole('button', { name: 'main.js', exact: false }).first()).toBeVisible()
  await editor.page.reload()
  await expect(
    editor.page.getByRole('navigation', { name: 'Files' }).getByRole('button', { name: 'main.js', exact: false }).first(),
  ).toBeVisible()

  // Deleting the file the other person has open closes their session and their tab.
  await openFile(editor.page, 'scratch.py')
  await tree.getByRole('listitem').filter({ hasText: 'scratch.py' }).hover()
  await tree.getByRole('button', { name: 'Delete scratch.py' }).click()
  await owner.page.getByRole('button', { name: 'Delete file' }).click()
  await expect(tree.getByRole('button', { name: 'scratch.py', exact: false })).toHaveCount(0)
  await expect(editor.page.getByRole('tab', { name: 'scratch.py' })).toHaveCount(0, { timeout: 20_000 })
  await screenshot(owner.page, testInfo, 'after-rename-and-delete')
  await screenshot(editor.page, testInfo, 'editor-after-deletion')

  await owner.context.close()
  await editor.context.close()
})

test('an owner removes a member, whose page says so at once, and regenerates the invite code', async ({ browser, baseURL }, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'boss')
  const member = await newPerson(browser, baseURL!, 'temp', 'light')
  await createRoom(owner.page, unique('Team '))
  const oldCode = await inviteCode(owner.page)
  await member.page.goto(`/join/${oldCode}`)
  await expect(member.page.getByTestId('presence').locator(`[data-username="${owner.name}"]`)).toBeVisible()

  await owner.page.getByRole('button', { name: 'Members' }).click()
  const row = owner.page.getByTestId('member-row').filter({ hasText: member.name })
  await row.getByRole('button', { name: `Remove ${member.name}` }).click()
  await row.getByRole('button', { name: 'Confirm' }).click()
  await expect(owner.page.getByTestId('member-row').filter({ hasText: member.name })).toHaveCount(0)
  await screenshot(owner.page, testInfo, 'members-panel')
  await owner.page.getByRole('button', { name: 'Done' }).click()
  await expect(member.page.getByRole('alert')).toContainText(/removed/i)
  await screenshot(member.page, testInfo, 'removed-member')

  // A new code: the old link stops working.
  await owner.page.getByRole('button', { name: 'Invite' }).click()
  await owner.page.getByRole('button', { name: 'New code' }).click()
  await expect(owner.page.getByTestId('invite-code')).not.toHaveText(oldCode)
  await owner.page.getByRole('button', { name: 'Done' }).click()
  await member.page.goto(`/join/${oldCode}`)
  await expect(member.page.getByRole('alert')).toBeVisible()
  await screenshot(member.page, testInfo, 'old-invite-refused')

  await owner.context.close()
  await member.context.close()
})
