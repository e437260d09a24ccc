// Canvas charts cannot read CSS variables or mix colours themselves: the theme's colour is
// read once and given an alpha here.

/** `colour` (hex or rgb()) with the given alpha, as rgba(); `null` for other forms. */
export function withAlpha(colour: string, alpha: number): string | null {
  const text = colour.trim();
  let rgb: number[] | null = null;
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})(?:[0-9a-f]{2})?$/i.exec(text);
  if (hex?.[1]) {
    const digits =
      hex[1].length === 3 ? [...hex[1]].map((d) => d + d) : (hex[1].match(/../g) ?? []);
    rgb = digits.map((pair) => Number.parseInt(pair, 16));
  } else {
    const match = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/i.exec(text);
    if (match) rgb = match.slice(1, 4).map(Number);
  }
  return rgb && rgb.length === 3 ? `rgba(${rgb.join(", ")}, ${alpha})` : null;
}
