// A bar chart drawn by Chart.js on a canvas (only the parts it needs are registered, so the
// bundle stays small), in the theme's colours, with its figures also given as text for readers
// that cannot see the canvas.

import { useEffect, useRef } from 'react'
import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from 'chart.js'
import { useUi } from '../state/ui'

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip)

function cssColour(name: string, fallback: string): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim()
  return value === '' ? fallback : value
}

export function BarChart({
  labels,
  values,
  label,
  unit = '',
  testId,
}: {
  labels: string[]
  values: number[]
  /** What the bars measure, for the tooltip and the text alternative. */
  label: string
  unit?: string
  testId?: string
}) {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const chartRef = useRef<Chart<'bar'> | null>(null)
  const theme = useUi((state) => state.theme)

  useEffect(() => {
    const canvas = canvasRef.current
    if (!canvas) return
    const accent = cssColour('--cs-accent', '#8b9cff')
    const muted = cssColour('--cs-muted', '#9aa3b8')
    const line = cssColour('--cs-line', '#2a2f3d')
    const chart = new Chart(canvas, {
      type: 'bar',
      data: { labels: [], datasets: [{ label, data: [], backgroundColor: accent, borderRadius: 4, maxBarThickness: 48 }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { tooltip: { callbacks: { label: (item) => `${label}: ${item.formattedValue}${unit}` } } },
        scales: {
          x: { ticks: { color: muted }, grid: { display: false } },
          y: { beginAtZero: true, ticks: { color: muted, precision: 0 }, grid: { color: line } },
        },
      },
    })
    chartRef.current = chart
    return () => {
      chart.destroy()
      chartRef.current = null
    }
  }, [label, unit, theme])

  useEffect(() => {
    const chart = chartRef.current
    if (!chart) return
    chart.data.labels = labels
    chart.data.datasets[0].data = values
    chart.update()
  }, [labels, values, theme])

  const description = labels.map((name, index) => `${name}: ${values[index]}${unit}`).join(', ')
  return (
    <figure className="flex h-56 flex-col" data-testid={testId}>
      <div className="relative min-h-0 flex-1">
        <canvas ref={canvasRef} role="img" aria-label={`${label}. ${description || 'No data yet.'}`} />
      </div>
      <figcaption className="sr-only">{description}</figcaption>
    </figure>
  )
}
