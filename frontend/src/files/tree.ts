// A room's files as a tree of folders: folders are implicit in the paths (`src/app/main.py`), plus
// folders made in this tab that hold no file yet.

export interface FolderNode<F> {
  kind: 'folder'
  name: string
  path: string
  children: TreeNode<F>[]
}

export interface FileNode<F> {
  kind: 'file'
  name: string
  path: string
  file: F
}

export type TreeNode<F> = FolderNode<F> | FileNode<F>

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' })

/** Folders first, then files, each by name as people sort them (`file2` before `file10`). */
function sortNodes<F>(nodes: TreeNode<F>[]): TreeNode<F>[] {
  nodes.sort((a, b) => (a.kind === b.kind ? collator.compare(a.name, b.name) : a.kind === 'folder' ? -1 : 1))
  for (const node of nodes) if (node.kind === 'folder') sortNodes(node.children)
  return nodes
}

export function buildTree<F extends { filename: string }>(files: F[], emptyFolders: string[] = []): TreeNode<F>[] {
  const root: FolderNode<F> = { kind: 'folder', name: '', path: '', children: [] }
  const folders = new Map<string, FolderNode<F>>([['', root]])
  const folderAt = (path: string): FolderNode<F> => {
    const known = folders.get(path)
    if (known !== undefined) return known
    const cut = path.lastIndexOf('/')
    const parent = folderAt(cut === -1 ? '' : path.slice(0, cut))
    const folder: FolderNode<F> = { kind: 'folder', name: path.slice(cut + 1), path, children: [] }
    parent.children.push(folder)
    folders.set(path, folder)
    return folder
  }
  for (const folder of emptyFolders) if (folder !== '') folderAt(folder)
  for (const file of files) {
    const cut = file.filename.lastIndexOf('/')
    const parent = folderAt(cut === -1 ? '' : file.filename.slice(0, cut))
    parent.children.push({ kind: 'file', name: file.filename.slice(cut + 1), path: file.filename, file })
  }
  return sortNodes(root.children)
}

/** The folder a path lies in ('' at the top). */
export function folderOf(path: string): string {
  const cut = path.lastIndexOf('/')
  return cut === -1 ? '' : path.slice(0, cut)
}

/** Whether `path` lies in `folder`, at any depth. */
export function isInside(path: string, folder: string): boolean {
  return folder === '' || path.startsWith(`${folder}/`)
}

/** A fuzzy match of `query` in `text` (each character in order), scored: higher is better; null when it does not match. */
export function fuzzyScore(query: string, text: string): number | null {
  const needle = query.toLowerCase()
  const haystack = text.toLowerCase()
  if (needle === '') return 0
  let score = 0
  let from = 0
  let previous = -2
  for (const character of needle) {
    const found = haystack.indexOf(character, from)
    if (found === -1) return null
    // Consecutive characters, and ones that start a name part, count more; a match in the file's own name most.
    score += found === previous + 1 ? 5 : 1
    if (found === 0 || '/._-'.includes(haystack[found - 1])) score += 3
    if (found > haystack.lastIndexOf('/')) score += 2
    previous = found
    from = found + 1
  }
  return score - text.length / 100
}
