import { createFile, createRoom, editorText, expect, newPerson, screenshot, test, typeInEditor, unique } from './helpers'

test('a Python file runs in the sandbox: output streams into the run panel, stdin is read, and Stop ends a run', async ({
  browser,
  baseURL,
}, testInfo) => {
  const coder = await newPerson(browser, baseURL!, 'runner')
  const page = coder.page
  await createRoom(page, unique('Run '))
  await createFile(page, 'main.py')
  await typeInEditor(page, "import sys\nprint('hello from the sandbox', sum(range(10)))\nprint(sys.stdin.read().upper())")
  expect(await editorText(page)).toContain('sum(range(10)))')

  // Ctrl+Enter straight after typing: the run waits for the edits to reach the server, so the
  // program that runs is the one on screen.
  await page.keyboard.press('Control+Enter')
  const panel = page.getByTestId('run-panel')
  const output = page.getByTestId('run-output')
  await expect(output).toContainText('hello from the sandbox 45', { timeout: 20_000 })
  await expect(page.getByTestId('run-status')).toContainText('Finished · exit 0')
  await expect(page.getByTestId('run-status')).toContainText(/\d+ ms/)
  await expect(page.getByTestId('run-status')).toContainText(/(KiB|MiB)/)

  // Standard input from the panel.
  await panel.getByRole('button', { name: 'Input' }).click()
  await page.getByTestId('run-stdin').fill('shout this')
  await panel.getByRole('button', { name: 'Run', exact: true }).click()
  await expect(output).toContainText('SHOUT THIS', { timeout: 20_000 })
  await screenshot(page, testInfo, 'run-panel-finished')

  // A program that never ends shows its output while it runs, and Stop ends it.
  await createFile(page, 'loop.py')
  await typeInEditor(page, "import time\nwhile True: print('tick', flush=True); time.sleep(0.2)")
  await page.getByTestId('run-button').click()
  await expect(output).toContainText('tick', { timeout: 20_000 })
  await expect(panel.getByText('Running…')).toBeVisible()
  await screenshot(page, testInfo, 'run-panel-streaming')
  await panel.getByRole('button', { name: 'Stop' }).click()
  await expect(panel.getByText('Stopped')).toBeVisible()

  // A runtime error is reported with its exit code and the traceback on stderr.
  await createFile(page, 'broken.py')
  await typeInEditor(page, "raise SystemExit('it broke')")
  await page.keyboard.press('Control+Enter')
  await expect(page.getByTestId('run-status')).toContainText('Runtime error · exit 1', { timeout: 20_000 })
  await expect(output.locator('.text-danger')).toContainText('it broke')

  // A file no language runs says so instead of running.
  await createFile(page, 'notes.md')
  await page.getByTestId('run-button').click()
  await expect(output).toContainText('Nothing runs notes.md')
  await expect(panel.getByRole('button', { name: 'Run', exact: true })).toBeDisabled()

  await coder.context.close()
})
