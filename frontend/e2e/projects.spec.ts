import { readFile } from 'node:fs/promises'
import {
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
  type Person,
} from './helpers'
import { unzip, zipOf } from './zip'

const project = {
  'src/app/__init__.py': '',
  'src/app/main.py': 'from app import util\nprint(util.hello())\n',
  'src/app/util.py': "def hello():\n    return 'hello'\n",
  'README.md': '# A project\n',
}

const tree = (person: Person) => person.page.getByRole('navigation', { name: 'Files' })
const fileRow = (person: Person, path: string) => tree(person).locator(`button[data-path="${path}"]`)
const folderRow = (person: Person, path: string) => tree(person).locator(`button[data-folder="${path}"]`)

test('two people bring a project in as a zip, move a folder while editing in it, find things, follow each other, and take it home', async ({
  browser,
  baseURL,
}, testInfo) => {
  const alice = await newPerson(browser, baseURL!, 'alice')
  const bob = await newPerson(browser, baseURL!, 'bob', 'light')
  const roomName = unique('Project ')
  await createRoom(alice.page, roomName)
  const code = await inviteCode(alice.page)
  await bob.page.getByLabel('Invite code or link').fill(code)
  await bob.page.getByRole('button', { name: 'Join', exact: true }).click()
  await expect(bob.page.getByTestId('room-name')).toHaveText(roomName)

  // Alice uploads a zipped project with folders; both see the tree, Bob without a reload.
  await alice.page.getByTestId('archive-picker').setInputFiles({ name: 'project.zip', mimeType: 'application/zip', buffer: zipOf(project) })
  await expect(alice.page.getByTestId('archive-report')).toContainText('4 files written (4 new, 0 replaced)')
  await alice.page.getByRole('button', { name: 'OK' }).click()
  for (const person of [alice, bob]) {
    await expect(folderRow(person, 'src')).toBeVisible()
    await expect(folderRow(person, 'src/app')).toBeVisible()
    await expect(fileRow(person, 'src/app/main.py')).toBeVisible()
    await expect(fileRow(person, 'README.md')).toBeVisible()
  }
  // A hostile archive dropped onto the tree is refused, with the reason per file, and writes nothing.
  const evil = [...zipOf({ 'ok.py': '', '../escape.py': 'x' })]
  const dataTransfer = await alice.page.evaluateHandle((bytes) => {
    const transfer = new DataTransfer()
    transfer.items.add(new File([new Uint8Array(bytes)], 'evil.zip', { type: 'application/zip' }))
    return transfer
  }, evil)
  await tree(alice).dispatchEvent('drop', { dataTransfer })
  await expect(alice.page.getByTestId('archive-report')).toContainText('../escape.py')
  await alice.page.getByRole('button', { name: 'OK' }).click()
  await expect(fileRow(alice, 'ok.py')).toHaveCount(0)

  // Bob opens src/app/main.py and types; Alice moves the folder src to lib while he is in it.
  await fileRow(bob, 'src/app/main.py').click()
  await waitUntilSaved(bob.page)
  await typeInEditor(bob.page, '# before the move\n')
  // On the row's name: its actions, once shown, cover the row's right half.
  await folderRow(alice, 'src').hover({ position: { x: 30, y: 8 } })
  await alice.page.getByRole('button', { name: 'Move folder src' }).click()
  await alice.page.getByLabel('New path').fill('lib')
  await alice.page.getByRole('button', { name: 'Move', exact: true }).click()
  for (const person of [alice, bob]) {
    await expect(fileRow(person, 'lib/app/main.py')).toBeVisible()
    await expect(folderRow(person, 'src')).toHaveCount(0)
  }
  // Bob keeps typing in the same document, now at its new path.
  await typeInEditor(bob.page, '# after the move\n')
  await waitUntilSaved(bob.page)
  await expect(bob.page.getByRole('tab', { name: 'lib/app/main.py' })).toHaveAttribute('aria-selected', 'true')

  // Quick open finds the moved file by a fuzzy name; Alice sees what Bob typed.
  await alice.page.keyboard.press('Control+P')
  await alice.page.getByLabel('File to open').fill('lappmain')
  await alice.page.keyboard.press('Enter')
  await expect(alice.page.getByRole('tab', { name: 'lib/app/main.py' })).toHaveAttribute('aria-selected', 'true')
  await expect.poll(() => editorText(alice.page)).toContain('# after the move')

  // Search finds a string Bob just typed, and opens it at its line.
  const marker = unique('needle_')
  await typeInEditor(bob.page, `value = "${marker}"\n`)
  await fileRow(alice, 'README.md').click()
  await alice.page.keyboard.press('Control+Shift+F')
  await alice.page.getByLabel("Search the room's files").fill(marker)
  await alice.page.keyboard.press('Enter')
  const result = alice.page.getByTestId('search-results').getByRole('button', { name: new RegExp(marker) })
  await expect(result).toBeVisible()
  await expect(alice.page.getByTestId('search-results')).toContainText('lib/app/main.py')
  await result.click()
  await expect(alice.page.getByRole('tab', { name: 'lib/app/main.py' })).toHaveAttribute('aria-selected', 'true')
  await screenshot(alice.page, testInfo, 'alice-search-result')

  // Alice follows Bob: his file opens on her side when he switches, until she clicks.
  await alice.page.getByRole('button', { name: `Follow ${bob.name}` }).click()
  await expect(alice.page.getByTestId('following-banner')).toContainText(bob.name)
  await fileRow(bob, 'README.md').click()
  await expect(alice.page.getByRole('tab', { name: 'README.md' })).toHaveAttribute('aria-selected', 'true')
  await fileRow(bob, 'lib/app/util.py').click()
  await expect(alice.page.getByRole('tab', { name: 'lib/app/util.py' })).toHaveAttribute('aria-selected', 'true')
  await typeInEditor(bob.page, '# bob is here\n')
  await expect.poll(() => editorText(alice.page)).toContain('# bob is here')
  await screenshot(alice.page, testInfo, 'alice-following-bob')
  await alice.page.locator('[data-testid="editor"] .view-lines').click()
  await expect(alice.page.getByTestId('following-banner')).toHaveCount(0)

  // Rows drag into folders and back to the top; the other side sees each move.
  await fileRow(alice, 'README.md').dragTo(folderRow(alice, 'lib'))
  for (const person of [alice, bob]) await expect(fileRow(person, 'lib/README.md')).toBeVisible()
  await fileRow(alice, 'lib/README.md').dragTo(tree(alice).getByRole('heading', { name: 'Files' }))
  for (const person of [alice, bob]) await expect(fileRow(person, 'README.md')).toBeVisible()

  // The project downloads with every file at its path and the live text.
  await waitUntilSaved(bob.page)
  const downloading = alice.page.waitForEvent('download')
  await alice.page.getByRole('button', { name: 'Download the project (.zip)' }).click()
  const download = await downloading
  const files = unzip(await readFile((await download.path())!))
  expect(Object.keys(files).sort()).toEqual(['README.md', 'lib/app/__init__.py', 'lib/app/main.py', 'lib/app/util.py'])
  expect(files['lib/app/main.py']).toContain('# after the move')
  expect(files['lib/app/main.py']).toContain(marker)
  expect(files['lib/app/util.py']).toContain('# bob is here')
  expect(files['README.md']).toBe(project['README.md'])
})
