import { createFile, createRoom, editorText, expect, newPerson, screenshot, test, unique, waitUntilSaved } from './helpers'

test('a slow server shows loading states, and a failing one an error with a retry that works', async ({ browser, baseURL }, testInfo) => {
  const person = await newPerson(browser, baseURL!, 'slow')
  const roomName = unique('Patience ')
  await createRoom(person.page, roomName)
  await person.page.goto('/')
  await expect(person.page.getByText('You are not in any room yet')).toHaveCount(0)

  // Slow: the list takes two seconds; a spinner says so meanwhile.
  await person.page.route('**/api/rooms', async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    await route.continue()
  })
  await person.page.reload()
  await expect(person.page.getByRole('status').filter({ hasText: 'Loading rooms…' })).toBeVisible()
  await expect(person.page.getByRole('link', { name: new RegExp(roomName) })).toBeVisible()
  await person.page.unroute('**/api/rooms')

  // Failing: the server answers 503; an error and a retry that works once it is back.
  let failing = true
  await person.page.route('**/api/rooms', async (route) => {
    if (failing) {
      await route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'service_unavailable', message: 'the rooms service cannot be reached' } }),
      })
    } else {
      await route.continue()
    }
  })
  await person.page.reload()
  await expect(person.page.getByRole('alert')).toContainText('The rooms service cannot be reached.', { timeout: 30_000 })
  await screenshot(person.page, testInfo, 'rooms-error-state')
  failing = false
  await person.page.getByRole('button', { name: 'Try again' }).click()
  await expect(person.page.getByRole('link', { name: new RegExp(roomName) })).toBeVisible()
  await screenshot(person.page, testInfo, 'rooms-list')
  await person.context.close()
})

test('the file tree works from the keyboard', async ({ browser, baseURL }, testInfo) => {
  const person = await newPerson(browser, baseURL!, 'keys')
  await createRoom(person.page, unique('Keys '))
  await createFile(person.page, 'a.py')
  await person.page.keyboard.type('print("a")')
  await createFile(person.page, 'b.ts')
  await person.page.keyboard.type('const b = 2')
  await waitUntilSaved(person.page)

  // Focus the first file, move down with the arrow key, open with Enter.
  const tree = person.page.getByRole('navigation', { name: 'Files' })
  await tree.getByRole('button', { name: 'a.py', exact: false }).first().focus()
  await person.page.keyboard.press('ArrowDown')
  await expect(tree.getByRole('button', { name: 'b.ts', exact: false }).first()).toBeFocused()
  await person.page.keyboard.press('ArrowUp')
  await person.page.keyboard.press('Enter')
  await expect(person.page.getByRole('tab', { name: 'a.py' })).toHaveAttribute('aria-selected', 'true')
  await expect.poll(() => editorText(person.page)).toContain('print("a")')

  // Dialogs close with Escape and give the focus back to the page.
  await person.page.getByRole('button', { name: 'New file' }).first().click()
  await expect(person.page.getByRole('dialog', { name: 'New file' })).toBeVisible()
  await person.page.keyboard.press('Escape')
  await expect(person.page.getByRole('dialog', { name: 'New file' })).toHaveCount(0)

  // The theme toggle is a labelled button, and the choice sticks across a reload.
  await person.page.getByRole('button', { name: 'Switch to the light theme' }).click()
  await person.page.reload()
  await expect(person.page.locator('html')).not.toHaveClass(/dark/)
  await expect(person.page.getByRole('button', { name: 'Switch to the dark theme' })).toBeVisible()
  // Open tabs survive the reload too.
  await expect(person.page.getByRole('tab', { name: 'b.ts' })).toBeVisible()
  await waitUntilSaved(person.page)
  await screenshot(person.page, testInfo, 'light-theme-editor')
  await person.context.close()
})
