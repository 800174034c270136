import { describe, expect, it } from 'vitest'
import { buildTree, folderOf, fuzzyScore, isInside, type TreeNode } from './tree'

const names = <F>(nodes: TreeNode<F>[]): unknown[] =>
  nodes.map((node) => (node.kind === 'folder' ? { [node.name + '/']: names(node.children) } : node.name))

describe('buildTree', () => {
  it('nests files in their folders, folders first, in natural order', () => {
    const files = ['README.md', 'src/app/main.py', 'src/app/__init__.py', 'src/util10.py', 'src/util2.py', 'docs/a.md'].map((filename) => ({
      filename,
    }))
    expect(names(buildTree(files))).toEqual([
      { 'docs/': ['a.md'] },
      { 'src/': [{ 'app/': ['__init__.py', 'main.py'] }, 'util2.py', 'util10.py'] },
      'README.md',
    ])
  })

  it('shows folders made here before any file is in them', () => {
    expect(names(buildTree([{ filename: 'a.py' }], ['lib/core', 'lib']))).toEqual([{ 'lib/': [{ 'core/': [] }] }, 'a.py'])
  })
})

describe('paths', () => {
  it('knows folders', () => {
    expect(folderOf('a/b/c.py')).toBe('a/b')
    expect(folderOf('c.py')).toBe('')
    expect(isInside('a/b/c.py', 'a')).toBe(true)
    expect(isInside('ab/c.py', 'a')).toBe(false)
  })
})

describe('fuzzyScore', () => {
  it('matches characters in order and prefers the file name', () => {
    expect(fuzzyScore('mpy', 'src/app/main.py')).not.toBeNull()
    expect(fuzzyScore('xyz', 'src/app/main.py')).toBeNull()
    const inName = fuzzyScore('main', 'src/app/main.py') ?? 0
    const inFolder = fuzzyScore('main', 'main/app/other.py') ?? 0
    expect(inName).toBeGreaterThan(inFolder)
  })
})
