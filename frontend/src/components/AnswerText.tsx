// The prose of an answer, as the small part of Markdown models use in it: paragraphs, headings,
// bullet and numbered lists, **bold** and `inline code`. Everything becomes React elements, so
// nothing in an answer can become HTML of its own.

import type { ReactNode } from 'react'

/** `**bold**` and `` `code` `` within one line. */
function inline(text: string): ReactNode[] {
  const nodes: ReactNode[] = []
  const pattern = /(`[^`\n]+`|\*\*[^*\n]+\*\*)/g
  let last = 0
  for (const match of text.matchAll(pattern)) {
    const at = match.index ?? 0
    if (at > last) nodes.push(text.slice(last, at))
    const token = match[0]
    nodes.push(
      token.startsWith('`') ? (
        <code key={at} className="rounded bg-raised px-1 font-mono text-[12.5px]">
          {token.slice(1, -1)}
        </code>
      ) : (
        <strong key={at}>{token.slice(2, -2)}</strong>
      ),
    )
    last = at + token.length
  }
  if (last < text.length) nodes.push(text.slice(last))
  return nodes
}

type Block = { kind: 'paragraph'; text: string } | { kind: 'heading'; text: string } | { kind: 'list'; ordered: boolean; items: string[] }

export function blocksOf(text: string): Block[] {
  const blocks: Block[] = []
  let paragraph: string[] = []
  const flush = () => {
    if (paragraph.length > 0) blocks.push({ kind: 'paragraph', text: paragraph.join('\n') })
    paragraph = []
  }
  for (const line of text.split('\n')) {
    const bullet = /^\s*[-*]\s+(.*)$/.exec(line)
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line)
    const heading = /^#{1,6}\s+(.*)$/.exec(line)
    const item = bullet ?? numbered
    if (item) {
      flush()
      const ordered = numbered !== null
      const previous = blocks[blocks.length - 1]
      if (previous?.kind === 'list' && previous.ordered === ordered) previous.items.push(item[1])
      else blocks.push({ kind: 'list', ordered, items: [item[1]] })
    } else if (heading) {
      flush()
      blocks.push({ kind: 'heading', text: heading[1] })
    } else if (line.trim() === '') {
      flush()
    } else {
      paragraph.push(line)
    }
  }
  flush()
  return blocks
}

export function AnswerText({ text }: { text: string }) {
  return (
    <>
      {blocksOf(text).map((block, index) => {
        if (block.kind === 'heading')
          return (
            <p key={index} className="font-semibold">
              {inline(block.text)}
            </p>
          )
        if (block.kind === 'paragraph')
          return (
            <p key={index} className="whitespace-pre-wrap">
              {inline(block.text)}
            </p>
          )
        const List = block.ordered ? 'ol' : 'ul'
        return (
          <List key={index} className={`space-y-0.5 pl-5 ${block.ordered ? 'list-decimal' : 'list-disc'}`}>
            {block.items.map((item, itemIndex) => (
              <li key={itemIndex}>{inline(item)}</li>
            ))}
          </List>
        )
      })}
    </>
  )
}
