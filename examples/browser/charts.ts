// Two small SVG charts drawn by hand: the page stays light and nothing is fetched.

/** A point of the loss curve. */
export interface CurvePoint {
  step: number;
  loss: number;
}

/** One series of the per-digit chart: a name, a CSS colour and one value per digit. */
export interface BarSeries {
  name: string;
  color: string;
  values: readonly number[];
}

const SVG = 'http://www.w3.org/2000/svg';

function svgElement<K extends keyof SVGElementTagNameMap>(
  name: K,
  attributes: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Removes the previous drawing, keeping the chart's <title> (its accessible name). */
function clear(svg: SVGSVGElement): void {
  const title = svg.querySelector('title');
  svg.replaceChildren(...(title === null ? [] : [title]));
}

/** Size of the drawing area inside the viewBox, leaving room for the axis labels. */
function frame(svg: SVGSVGElement) {
  const box = svg.viewBox.baseVal;
  return { left: 48, right: box.width - 12, top: 12, bottom: box.height - 28 };
}

/** Three or so round numbers between `low` and `high` for the y axis. */
function ticks(low: number, high: number): number[] {
  const span = high - low || 1;
  const step = 10 ** Math.floor(Math.log10(span / 3));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 5) ?? step * 10;
  const first = Math.ceil(low / nice) * nice;
  const result: number[] = [];
  for (let t = first; t <= high + nice * 1e-9; t += nice) result.push(Number(t.toPrecision(6)));
  return result;
}

function yAxis(svg: SVGSVGElement, low: number, high: number, y: (v: number) => number): void {
  const f = frame(svg);
  for (const t of ticks(low, high)) {
    svg.append(
      svgElement('line', { class: 'axis', x1: f.left, x2: f.right, y1: y(t), y2: y(t) }),
      svgElement('text', { x: f.left - 6, y: y(t) + 4, 'text-anchor': 'end' }, String(t)),
    );
  }
}

/** Draws the loss curve, or a note when there is nothing to draw yet. */
export function drawLossCurve(svg: SVGSVGElement, points: readonly CurvePoint[]): void {
  clear(svg);
  const f = frame(svg);
  if (points.length === 0) {
    svg.append(
      svgElement(
        'text',
        { x: (f.left + f.right) / 2, y: (f.top + f.bottom) / 2, 'text-anchor': 'middle' },
        'The loss appears here while the model trains.',
      ),
    );
    return;
  }
  const losses = points.map((p) => p.loss);
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  const pad = (high - low) * 0.05 || Math.abs(high) * 0.05 || 1;
  const [yLow, yHigh] = [low - pad, high + pad];
  const lastStep = points[points.length - 1]!.step;
  const firstStep = points[0]!.step;
  const x = (step: number) =>
    f.left + ((step - firstStep) / Math.max(lastStep - firstStep, 1)) * (f.right - f.left);
  const y = (v: number) => f.bottom - ((v - yLow) / (yHigh - yLow)) * (f.bottom - f.top);
  yAxis(svg, yLow, yHigh, y);
  svg.append(
    svgElement('text', { x: f.left, y: f.bottom + 20 }, `step ${firstStep}`),
    svgElement('text', { x: f.right, y: f.bottom + 20, 'text-anchor': 'end' }, `step ${lastStep}`),
    svgElement('polyline', {
      points: points.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' '),
      fill: 'none',
      stroke: 'var(--accent)',
      'stroke-width': 2,
      'stroke-linejoin': 'round',
    }),
  );
}

/** Draws grouped bars: for each digit, one bar per series, with a legend on top. */
export function drawPerDigitBars(svg: SVGSVGElement, series: readonly BarSeries[]): void {
  clear(svg);
  const f = frame(svg);
  f.top = 32;
  if (series.length === 0) {
    svg.append(
      svgElement(
        'text',
        { x: (f.left + f.right) / 2, y: (f.top + f.bottom) / 2, 'text-anchor': 'middle' },
        'Per-digit errors appear here when a model is trained or loaded.',
      ),
    );
    return;
  }
  const digits = Math.max(...series.map((s) => s.values.length));
  const finite = series.flatMap((s) => s.values.filter(Number.isFinite));
  const high = Math.max(...finite, 1e-6) * 1.08;
  const y = (v: number) => f.bottom - (v / high) * (f.bottom - f.top);
  yAxis(svg, 0, high, y);
  const slot = (f.right - f.left) / digits;
  const barWidth = (slot * 0.8) / series.length;
  series.forEach((s, k) => {
    const legendX = f.left + k * 150;
    svg.append(
      svgElement('rect', { x: legendX, y: 6, width: 12, height: 12, fill: s.color, rx: 2 }),
      svgElement('text', { x: legendX + 17, y: 16 }, s.name),
    );
    s.values.forEach((value, digit) => {
      if (!Number.isFinite(value)) return;
      const bar = svgElement('rect', {
        x: f.left + digit * slot + slot * 0.1 + k * barWidth,
        y: y(value),
        width: Math.max(barWidth - 1, 1),
        height: Math.max(f.bottom - y(value), 0),
        fill: s.color,
        rx: 1.5,
      });
      bar.append(svgElement('title', {}, `${s.name}, digit ${digit}: ${value.toFixed(4)}`));
      svg.append(bar);
    });
  });
  for (let digit = 0; digit < digits; digit++) {
    svg.append(
      svgElement(
        'text',
        { x: f.left + (digit + 0.5) * slot, y: f.bottom + 18, 'text-anchor': 'middle' },
        String(digit),
      ),
    );
  }
}
