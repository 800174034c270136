import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import { AnswerText, blocksOf } from './AnswerText'

describe('AnswerText', () => {
  it('reads paragraphs, headings and lists', () => {
    expect(blocksOf('## Findings\n- one\n- two\n\n1. first\n2. second\nA closing\nparagraph.')).toEqual([
      { kind: 'heading', text: 'Findings' },
      { kind: 'list', ordered: false, items: ['one', 'two'] },
      { kind: 'list', ordered: true, items: ['first', 'second'] },
      { kind: 'paragraph', text: 'A closing\nparagraph.' },
    ])
  })

  it('renders bold and inline code, and never HTML from the answer', () => {
    const html = renderToStaticMarkup(<AnswerText text={'Use **`add`** not <script>alert(1)</script> `x < y`'} />)
    expect(html).toContain('<strong>`add`</strong>')
    expect(html).toContain('&lt;script&gt;')
    expect(html).toContain('<code class="rounded bg-raised px-1 font-mono text-[12.5px]">x &lt; y</code>')
    expect(html).not.toContain('<script>')
  })
})
