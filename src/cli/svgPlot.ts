/** One line of a plot: points (x, y) in data units, drawn in order. */
export interface PlotSeries {
  label: string;
  points: [number, number][];
  /** Optional band (e.g. ± std) as [x, low, high] triples. */
  band?: [number, number, number][];
}

/** Options of `linePlotSvg`. */
export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** A horizontal reference line, e.g. a paper's reported return. */
  reference?: { y: number; label: string };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

/**
 * A self-contained SVG line plot (axes, ticks, legend, optional reference line and bands), for
 * learning curves written next to metrics (`curve.svg`) and committed benchmark results. No
 * dependencies: the output is plain text that any browser or image viewer renders.
 */
export function linePlotSvg(series: PlotSeries[], options: LinePlotOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 420;
  const m = { left: 70, right: 20, top: 40, bottom: 55 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => [...s.points.map((p) => p[1]), ...(s.band ?? []).flatMap((b) => [b[1], b[2]])]);
  if (options.reference) ys.push(options.reference.y);
  const [x0, x1] = niceRange(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1);
  const [y0, y1] = niceRange(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1);
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const sx = (x: number): number => m.left + ((x - x0) / (x1 - x0 || 1)) * pw;
  const sy = (y: number): number => m.top + ph - ((y - y0) / (y1 - y0 || 1)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(options.title)}</text>`,
  ];
  for (const t of ticks(x0, x1)) {
    out.push(`<line x1="${f(sx(t))}" y1="${m.top}" x2="${f(sx(t))}" y2="${m.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${f(sx(t))}" y="${m.top + ph + 16}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    out.push(`<line x1="${m.left}" y1="${f(sy(t))}" x2="${m.left + pw}" y2="${f(sy(t))}" stroke="#eee"/>`);
    out.push(`<text x="${m.left - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${height - 14}" text-anchor="middle">${esc(options.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(options.yLabel)}</text>`);
  if (options.reference) {
    const y = f(sy(options.reference.y));
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#555" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.left + pw - 4}" y="${f(sy(options.reference.y) - 5)}" text-anchor="end" fill="#555">${esc(options.reference.label)}</text>`);
  }
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    if (s.band && s.band.length > 1) {
      const upper = s.band.map((b) => `${f(sx(b[0]))},${f(sy(b[2]))}`);
      const lower = s.band.map((b) => `${f(sx(b[0]))},${f(sy(b[1]))}`).reverse();
      out.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${c}" fill-opacity="0.15" stroke="none"/>`);
    }
    if (s.points.length === 1) {
      out.push(`<circle cx="${f(sx(s.points[0][0]))}" cy="${f(sy(s.points[0][1]))}" r="3" fill="${c}"/>`);
    } else if (s.points.length > 1) {
      out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.8" points="${s.points.map((p) => `${f(sx(p[0]))},${f(sy(p[1]))}`).join(' ')}"/>`);
    }
    out.push(`<rect x="${m.left + 10}" y="${m.top + 8 + 16 * i}" width="14" height="3" fill="${c}"/>`);
    out.push(`<text x="${m.left + 30}" y="${m.top + 13 + 16 * i}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function niceRange(lo: number, hi: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  const step = niceStep((hi - lo) / 5);
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const r = raw / p;
  return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * p;
}

function ticks(lo: number, hi: number): number[] {
  const step = niceStep((hi - lo) / 5);
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

function fmtTick(t: number): string {
  if (Math.abs(t) >= 10000) return `${+(t / 1000).toPrecision(4)}k`;
  return String(+t.toPrecision(4));
}

function f(v: number): string {
  return v.toFixed(1);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
