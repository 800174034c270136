import { createFile, createRoom, expect, inviteCode, joinRoom, newPerson, screenshot, test, typeInEditor, unique } from './helpers'

test('a finished run rings the bell at once; joins too; the notifications page groups by day, filters and marks read', async ({
  browser,
  baseURL,
}, testInfo) => {
  const owner = await newPerson(browser, baseURL!, 'ringer')
  const joiner = await newPerson(browser, baseURL!, 'newcomer', 'light')
  const roomName = unique('Bell ')
  await createRoom(owner.page, roomName)
  await createFile(owner.page, 'hello.py')
  await typeInEditor(owner.page, "print('ding')")
  const bell = owner.page.getByTestId('notification-bell')
  await expect(owner.page.getByTestId('unread-badge')).toBeHidden()

  // The run's notification arrives live: the badge counts it without a reload.
  await owner.page.keyboard.press('Control+Enter')
  await expect(owner.page.getByTestId('run-status')).toContainText('Finished', { timeout: 20_000 })
  await expect(owner.page.getByTestId('unread-badge')).toHaveText('1', { timeout: 2_000 })
  await bell.click()
  const menu = owner.page.getByTestId('notification-menu')
  await expect(menu).toContainText('Your python run finished')
  await expect(menu).toContainText('Exit code 0')
  await screenshot(owner.page, testInfo, 'bell-open')
  await owner.page.getByRole('button', { name: 'Mark all read' }).click()
  await expect(owner.page.getByTestId('unread-badge')).toBeHidden()
  await owner.page.keyboard.press('Escape')

  // Someone joins with the invite code: the owner hears of it.
  const code = await inviteCode(owner.page)
  await joinRoom(joiner.page, code, roomName)
  await expect(owner.page.getByTestId('unread-badge')).toHaveText('1')
  await bell.click()
  await expect(menu.getByRole('button').first()).toContainText(`${joiner.name} joined ${roomName}`)
  await owner.page.getByRole('link', { name: 'See all notifications' }).click()

  // The page: today's two, newest first; filtered by type; one marked read.
  const days = owner.page.getByTestId('notification-day')
  await expect(days).toHaveCount(1)
  await expect(days.first().getByRole('heading')).toHaveText('Today')
  await expect(days.first().getByRole('listitem')).toHaveCount(2)
  await expect(days.first().getByRole('listitem').first()).toContainText('joined')
  await owner.page.getByTestId('type-filter').selectOption('execution')
  await expect(days.first().getByRole('listitem')).toHaveCount(1)
  await expect(days.first()).toContainText('Your python run finished')
  await owner.page.getByTestId('type-filter').selectOption('')
  await days.first().getByRole('button', { name: 'Mark read' }).click()
  await expect(owner.page.getByTestId('unread-badge')).toBeHidden()
  await owner.page.getByLabel('Unread only').check()
  await expect(owner.page.getByText('Nothing matches these filters.')).toBeVisible()
  await screenshot(owner.page, testInfo, 'notifications-page')

  await owner.context.close()
  await joiner.context.close()
})
