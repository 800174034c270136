import AxeBuilder from '@axe-core/playwright'
import type { Page } from '@playwright/test'
import {
  createFile,
  createRoom,
  expect,
  newPerson,
  screenshot,
  sendChat,
  signInAsAdmin,
  test,
  typeInEditor,
  unique,
  waitUntilSaved,
} from './helpers'

/** axe-core's serious and critical findings (WCAG 2 A and AA), outside Monaco's own widget. */
async function violations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).exclude('.monaco-editor').analyze()
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`)
}

for (const colorScheme of ['dark', 'light'] as const) {
  test(`every page passes axe's WCAG A and AA checks in the ${colorScheme} theme`, async ({ browser, baseURL }, testInfo) => {
    const context = await browser.newContext({ baseURL, colorScheme })
    const visitor = await context.newPage()
    await visitor.goto('/login')
    await expect(visitor.getByRole('heading', { name: 'Sign in to CodeSync' })).toBeVisible()
    expect(await violations(visitor), 'sign-in page').toEqual([])
    await visitor.goto('/register')
    await expect(visitor.getByRole('heading', { name: 'Create your account' })).toBeVisible()
    expect(await violations(visitor), 'registration page').toEqual([])
    await context.close()

    const person = await newPerson(browser, baseURL!, 'axe', colorScheme)
    expect(await violations(person.page), 'rooms page, empty').toEqual([])
    await createRoom(person.page, unique('Audit '))
    await createFile(person.page, 'main.py')
    await typeInEditor(person.page, 'print("hello")')
    await sendChat(person.page, 'a message')
    await expect(person.page.getByTestId('chat-messages')).toContainText('a message')
    await waitUntilSaved(person.page)
    expect(await violations(person.page), 'room page').toEqual([])
    await screenshot(person.page, testInfo, `room-${colorScheme}`)
    // The run panel with a result and its stdin box open.
    await person.page.keyboard.press('Control+Enter')
    await expect(person.page.getByTestId('run-status')).toContainText('Finished', { timeout: 20_000 })
    await person.page.getByTestId('run-panel').getByRole('button', { name: 'Input' }).click()
    expect(await violations(person.page), 'run panel').toEqual([])
    await person.page.getByRole('button', { name: 'Show the assistant' }).click()
    await expect(person.page.getByTestId('assistant-panel')).toBeVisible()
    expect(await violations(person.page), 'assistant panel').toEqual([])
    // The history with a saved version open beside the file, and its restore dialog.
    await person.page.keyboard.press('Control+S')
    await expect(person.page.getByTestId('save-notice')).toHaveText('Saved as v1')
    await person.page.getByRole('button', { name: 'Show the history' }).click()
    await person.page.getByTestId('version-1').click()
    await expect(person.page.getByTestId('version-diff')).toBeVisible()
    expect(await violations(person.page), 'history panel and version').toEqual([])
    await person.page.getByTestId('restore-version').click()
    expect(await violations(person.page), 'restore dialog').toEqual([])
    await person.page.getByRole('button', { name: 'Cancel' }).click()
    await person.page.getByRole('button', { name: 'Close the version' }).click()
    // The bell's menu (the run above is in it) and the notifications page.
    await expect(person.page.getByTestId('unread-badge')).toBeVisible()
    await person.page.getByTestId('notification-bell').click()
    expect(await violations(person.page), 'notification menu').toEqual([])
    await person.page.getByRole('link', { name: 'See all notifications' }).click()
    await expect(person.page.getByTestId('notification-day').first()).toBeVisible()
    expect(await violations(person.page), 'notifications page').toEqual([])
    await person.page.goBack()
    await person.page.getByRole('button', { name: 'Members' }).click()
    expect(await violations(person.page), 'members dialog').toEqual([])
    await person.page.getByRole('button', { name: 'Done' }).click()
    await person.page.getByRole('link', { name: 'CodeSync, your rooms' }).click()
    await expect(person.page.getByRole('heading', { name: 'Rooms', exact: true })).toBeVisible()
    expect(await violations(person.page), 'rooms page').toEqual([])
    await person.context.close()

    // The dashboard's five tabs.
    const admin = await signInAsAdmin(browser, baseURL!)
    await admin.page.goto('/admin')
    for (const tab of ['Overview', 'Executions', 'AI', 'Events', 'Rooms']) {
      await admin.page.getByRole('tab', { name: tab }).click()
      await expect(admin.page.getByRole('tabpanel')).not.toContainText('Loading…')
      expect(await violations(admin.page), `dashboard, ${tab}`).toEqual([])
    }
    await admin.context.close()
  })
}
