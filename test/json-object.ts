// The reference the byte-level JSON validators are checked against: whether JSON.parse reads
// the text as one object.
export function isJsonObjectText (text: string): boolean {
  try {
    const v: unknown = JSON.parse(text)
    return v !== null && typeof v === 'object' && !Array.isArray(v)
  } catch {
    return false
  }
}
