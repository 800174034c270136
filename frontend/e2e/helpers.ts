import { expect, test as base, type Browser, type BrowserContext, type Page, type TestInfo } from '@playwright/test'

/** Uncaught exceptions in any page of the running test; a test with any fails. */
let pageErrors: string[] = []

export const test = base.extend<{ failOnPageErrors: void }>({
  /** The suite's server (global-setup.ts) is every test's base URL. */
  baseURL: async ({}, use) => {
    const url = process.env.CODESYNC_E2E_BASE_URL
    if (!url) throw new Error('CODESYNC_E2E_BASE_URL is unset: run through playwright.config.ts (global setup starts the server)')
    await use(url)
  },
  failOnPageErrors: [
    async ({}, use) => {
      pageErrors = []
      await use()
      expect(pageErrors, 'uncaught errors in the pages').toEqual([])
    },
    { auto: true },
  ],
})
export { expect }

let counter = 0
/** A name no other test (or earlier run against the same server) used. */
export function unique(prefix: string): string {
  counter += 1
  return `${prefix}${Date.now().toString(36).slice(-5)}${counter}`
}

export interface Person {
  name: string
  context: BrowserContext
  page: Page
}

/** A new browser context (its own storage: a different person) that registers through the UI. */
export async function newPerson(
  browser: Browser,
  baseURL: string,
  prefix: string,
  colorScheme: 'dark' | 'light' = 'dark',
): Promise<Person> {
  // The app follows the system's colour scheme until the user picks one: both themes get exercised.
  const context = await browser.newContext({ baseURL, viewport: { width: 1440, height: 900 }, colorScheme })
  const page = await context.newPage()
  page.on('pageerror', (error) => pageErrors.push(`[${prefix}] ${error.message}`))
  const name = unique(prefix)
  await page.goto('/register')
  await page.getByLabel('Username').fill(name)
  await page.getByLabel('Email').fill(`${name}@example.test`)
  await page.getByLabel('Password').fill('correct horse battery staple')
  await page.getByRole('button', { name: 'Create account' }).click()
  await expect(page.getByRole('heading', { name: 'Rooms', exact: true })).toBeVisible()
  await expect(page.getByTestId('current-user')).toHaveText(name)
  return { name, context, page }
}

/** A new browser context signed in through the sign-in page as the suite's administrator. */
export async function signInAsAdmin(browser: Browser, baseURL: string): Promise<Person> {
  const email = process.env.CODESYNC_E2E_ADMIN_EMAIL
  const password = process.env.CODESYNC_E2E_ADMIN_PASSWORD
  if (!email || !password) throw new Error('the global setup made no administrator')
  const context = await browser.newContext({ baseURL, viewport: { width: 1440, height: 900 }, colorScheme: 'dark' })
  const page = await context.newPage()
  page.on('pageerror', (error) => pageErrors.push(`[admin] ${error.message}`))
  await page.goto('/login')
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await expect(page.getByRole('heading', { name: 'Rooms', exact: true })).toBeVisible()
  return { name: 'e2eadmin', context, page }
}

/** Joins a room by its invite code from the rooms page, and waits for the room. */
export async function joinRoom(page: Page, code: string, roomName: string): Promise<void> {
  await page.goto(`/join/${code}`)
  await expect(page.getByTestId('room-name')).toHaveText(roomName)
}

/** Creates a room through the dialog and waits for its page. */
export async function createRoom(page: Page, roomName: string, visibility: 'private' | 'public' = 'private'): Promise<void> {
  await page.getByRole('button', { name: 'New room' }).click()
  await page.getByLabel('Name').fill(roomName)
  if (visibility === 'public') await page.getByRole('checkbox', { name: /Public/ }).check()
  await page.getByRole('button', { name: 'Create room' }).click()
  await expect(page.getByTestId('room-name')).toHaveText(roomName)
}

export async function createFile(page: Page, filename: string): Promise<void> {
  await page.getByRole('button', { name: 'New file' }).first().click()
  await page.getByLabel('File name').fill(filename)
  await page.getByRole('button', { name: 'Create file' }).click()
  await expect(page.getByRole('tab', { name: filename })).toBeVisible()
  await waitUntilSaved(page)
}

/** The invite code, read from the invite dialog. */
export async function inviteCode(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'Invite' }).click()
  const code = (await page.getByTestId('invite-code').textContent())?.trim() ?? ''
  expect(code).not.toBe('')
  await page.getByRole('button', { name: 'Done' }).click()
  return code
}

export async function openFile(page: Page, filename: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Files' }).getByRole('button', { name: filename, exact: false }).first().click()
  await expect(page.getByRole('tab', { name: filename })).toHaveAttribute('aria-selected', 'true')
  await waitUntilSaved(page)
}

export async function waitUntilSaved(page: Page): Promise<void> {
  await expect(page.getByTestId('connection-status')).toHaveText('Connected · saved')
}

/** The editor's text as Monaco shows it (Monaco renders spaces as no-break spaces). */
export async function editorText(page: Page): Promise<string> {
  const text = await page.locator('[data-testid="editor"] .view-lines').innerText()
  return text.replace(/\u00a0/g, ' ')
}

/** Types at the end of the file, or at the end of its first line. */
export async function typeInEditor(page: Page, text: string, where: 'end' | 'end-of-first-line' = 'end'): Promise<void> {
  await page.locator('[data-testid="editor"] .view-lines').click()
  if (where === 'end') {
    await page.keyboard.press('Control+End')
  } else {
    await page.keyboard.press('Control+Home')
    await page.keyboard.press('End')
  }
  await page.keyboard.type(text, { delay: 15 })
}

/** The names shown on remote cursors (the label is the `::after` of y-monaco's cursor decoration). */
export async function remoteCursorLabels(page: Page): Promise<string[]> {
  return page
    .locator('.yRemoteSelectionHead')
    .evaluateAll((heads) => heads.map((head) => getComputedStyle(head, '::after').content.replace(/^"|"$/g, '')))
}

export async function sendChat(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message the room').fill(text)
  await page.keyboard.press('Enter')
}

/** Saves a screenshot as a test artifact (attached to the report and kept in test-results/). */
export async function screenshot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  const path = testInfo.outputPath(`${name}.png`)
  await page.screenshot({ path, fullPage: false })
  await testInfo.attach(name, { path, contentType: 'image/png' })
}
