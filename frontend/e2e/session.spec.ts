import { createRoom, expect, inviteCode, newPerson, screenshot, test, unique } from './helpers'

const PASSWORD = 'correct horse battery staple'

test('sign out, a wrong password, sign in again, and an invite link opened while signed out', async ({ browser, baseURL }, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'host')
  const roomName = unique('Invite ')
  await createRoom(owner.page, roomName)
  const code = await inviteCode(owner.page)

  const guest = await newPerson(browser, baseURL!, 'guest')
  await guest.page.getByRole('button', { name: 'Sign out' }).click()
  await expect(guest.page.getByRole('heading', { name: 'Sign in to CodeSync' })).toBeVisible()
  expect(await guest.page.evaluate(() => localStorage.getItem('codesync.session'))).toBeNull()

  // The invite link, signed out: sign in first, then it joins.
  await guest.page.goto(`/join/${code}`)
  await expect(guest.page).toHaveURL(/\/login\?next=/)
  await guest.page.getByLabel('Email').fill(`${guest.name}@example.test`)
  await guest.page.getByLabel('Password').fill('not the password')
  await guest.page.getByRole('button', { name: 'Sign in' }).click()
  await expect(guest.page.getByRole('alert')).toContainText(/invalid|incorrect|wrong/i)
  await screenshot(guest.page, testInfo, 'sign-in-refused')
  await guest.page.getByLabel('Password').fill(PASSWORD)
  await guest.page.getByRole('button', { name: 'Sign in' }).click()
  await expect(guest.page.getByTestId('room-name')).toHaveText(roomName)
  await expect(guest.page.getByTestId('presence').locator(`[data-username="${owner.name}"]`)).toBeVisible()

  await owner.context.close()
  await guest.context.close()
})

test('the access token is refreshed silently and everything keeps working', async ({ browser, baseURL }, testInfo) => {
  // The suite's server issues 20-second access tokens (global-setup.ts).
  const person = await newPerson(browser, baseURL!, 'refresh')
  const firstToken = await person.page.evaluate(() => JSON.parse(localStorage.getItem('codesync.session') ?? '{}').accessToken as string)
  await expect
    .poll(() => person.page.evaluate(() => JSON.parse(localStorage.getItem('codesync.session') ?? '{}').accessToken as string), {
      timeout: 30_000,
    })
    .not.toBe(firstToken)
  // The new token works for REST and for the sockets, with no sign-in prompt.
  const roomName = unique('After refresh ')
  await createRoom(person.page, roomName)
  await expect(person.page.getByTestId('presence').locator(`[data-username="${person.name}"]`)).toBeVisible()
  await screenshot(person.page, testInfo, 'after-silent-refresh')
  await person.context.close()
})
