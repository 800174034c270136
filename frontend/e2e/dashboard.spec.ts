import { createFile, createRoom, expect, newPerson, screenshot, signInAsAdmin, test, typeInEditor, unique } from './helpers'

test('the dashboard shows what happened, in five tabs with charts, refreshed live; only administrators reach it', async ({
  browser,
  baseURL,
}, testInfo) => {
  // Someone runs code and edits, so every tab has something.
  const user = await newPerson(browser, baseURL!, 'measured')
  const roomName = unique('Measured ')
  await createRoom(user.page, roomName)
  await createFile(user.page, 'count.py')
  await typeInEditor(user.page, 'print(sum(range(100)))')
  await user.page.keyboard.press('Control+Enter')
  await expect(user.page.getByTestId('run-status')).toContainText('Finished', { timeout: 20_000 })
  // Not an administrator: no way in.
  await expect(user.page.getByRole('link', { name: 'Dashboard' })).toHaveCount(0)
  await user.page.goto('/admin')
  await expect(user.page.getByText('Only administrators see the dashboard')).toBeVisible()

  const admin = await signInAsAdmin(browser, baseURL!)
  await admin.page.getByRole('link', { name: 'Dashboard' }).click()
  await expect(admin.page.getByRole('heading', { name: 'Dashboard' })).toBeVisible()

  // The figures on the cards are the API's, and they follow new activity without a reload.
  const overview = async () => {
    const token = await admin.page.evaluate(() => JSON.parse(localStorage.getItem('codesync.session') ?? 'null')?.accessToken as string)
    const response = await admin.page.request.get('/api/analytics/overview', { headers: { Authorization: `Bearer ${token}` } })
    return (await response.json()) as { users: number; executions: number; rooms: number }
  }
  const before = await overview()
  await expect(admin.page.getByTestId('stat-users-value')).toHaveText(String(before.users))
  await expect(admin.page.getByTestId('stat-executions-value')).toHaveText(String(before.executions))
  await expect(admin.page.getByTestId('service-health').getByRole('listitem')).toHaveCount(9)
  await expect(admin.page.getByTestId('service-health')).not.toContainText('unreachable')
  await screenshot(admin.page, testInfo, 'dashboard-overview')
  await user.page.goto('/')
  await newPerson(browser, baseURL!, 'latecomer')
  await expect(admin.page.getByTestId('stat-users-value')).toHaveText(String(before.users + 1), { timeout: 15_000 })

  await admin.page.getByRole('tab', { name: 'Executions' }).click()
  await expect(admin.page.getByTestId('executions-chart').locator('canvas')).toBeVisible()
  await expect(admin.page.getByTestId('executions-table')).toContainText('python')
  await expect(admin.page.getByTestId('wall-time-histogram').locator('canvas')).toBeVisible()
  await screenshot(admin.page, testInfo, 'dashboard-executions')

  await admin.page.getByRole('tab', { name: 'AI' }).click()
  await expect(admin.page.getByRole('tabpanel')).toContainText(/No assistant answers yet|AI calls by mode/)

  await admin.page.getByRole('tab', { name: 'Events' }).click()
  await expect(admin.page.getByTestId('event-log')).toContainText('execution_finished')
  await expect(admin.page.getByTestId('event-log')).toContainText('user_registered')

  await admin.page.getByRole('tab', { name: 'Rooms' }).click()
  await expect(admin.page.getByTestId('room-leaderboard')).toContainText(roomName)
  await screenshot(admin.page, testInfo, 'dashboard-rooms')

  await user.context.close()
  await admin.context.close()
})
