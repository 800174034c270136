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
} from './helpers'

test('the assistant streams an answer whose code is inserted as a collaborative edit that the other browser sees', async ({
  browser,
  baseURL,
}, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'asker')
  const peer = await newPerson(browser, baseURL!, 'watcher', 'light')
  await createRoom(owner.page, unique('Assist '))
  await createFile(owner.page, 'main.py')
  await typeInEditor(owner.page, '# greetings\n')
  const code = await inviteCode(owner.page)
  await peer.page.goto(`/join/${code}`)
  await openFile(peer.page, 'main.py')

  // Ask in generate mode; the answer streams in, prose and a code block.
  await owner.page.getByRole('button', { name: 'Show the assistant' }).click()
  const panel = owner.page.getByTestId('assistant-panel')
  await panel.getByTestId('assistant-mode').selectOption('generate')
  await panel.getByLabel('Ask the assistant').fill('a greeting function')
  await panel.getByLabel('Ask the assistant').press('Enter')
  const answer = panel.getByTestId('assistant-answer').last()
  await expect(answer).toContainText('Here is the function', { timeout: 15_000 })
  await expect(answer).toContainText('Call it with a name.')
  await expect(answer.locator('pre')).toContainText('def greet(name):')
  await expect(panel.getByText(/stand-in · first token \d+ ms/)).toBeVisible()
  await screenshot(owner.page, testInfo, 'assistant-answer')

  // Insert at the cursor (after the comment): a Yjs edit like typing, seen by the other browser.
  await panel.getByRole('button', { name: 'Insert at cursor' }).click()
  await expect.poll(() => editorText(owner.page)).toContain('def greet(name):')
  await expect.poll(() => editorText(peer.page), { timeout: 10_000 }).toContain("return f'hello {name}'")
  expect(await editorText(peer.page)).toContain('# greetings')
  await screenshot(peer.page, testInfo, 'peer-sees-inserted-code')

  // Replace selection: the selected first line (the comment) becomes the answer's code, for both.
  await owner.page.locator('[data-testid="editor"] .view-lines').click()
  await owner.page.keyboard.press('Control+Home')
  await owner.page.keyboard.press('Shift+End')
  await panel.getByRole('button', { name: 'Replace selection' }).first().click()
  for (const person of [owner, peer]) {
    await expect.poll(() => editorText(person.page), { timeout: 10_000 }).not.toContain('# greetings')
    await expect.poll(() => editorText(person.page)).toContain('def greet(name):')
  }

  // An answer that never ends stops with Stop; the conversation stays.
  await panel.getByTestId('assistant-mode').selectOption('chat')
  await panel.getByLabel('Ask the assistant').fill('SLOW please')
  await panel.getByLabel('Ask the assistant').press('Enter')
  await expect(panel.getByTestId('assistant-answer').last()).toContainText('tick1', { timeout: 15_000 })
  await panel.getByRole('button', { name: 'Stop' }).click()
  await expect(panel.getByText('Stopped.')).toBeVisible()
  await expect(panel.getByTestId('assistant-turn')).toHaveCount(2)

  await owner.context.close()
  await peer.context.close()
})
