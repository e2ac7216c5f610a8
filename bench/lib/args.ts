// A tiny flag parser: `--name value`, `--name=value` and boolean `--flag` / `--no-flag`, with
// an environment variable as the fallback for each flag.
export interface FlagSpec {
  /** Flag name without dashes, e.g. `records`. */
  name: string
  /** Environment variable read when the flag is absent, e.g. `BENCH_RECORDS`. */
  env?: string
  boolean?: boolean
  help: string
}

export type Flags = Map<string, string | boolean>

export function parseFlags (argv: string[], specs: FlagSpec[], usage: string): Flags {
  const byName = new Map(specs.map((s) => [s.name, s]))
  const flags: Flags = new Map()
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k] as string
    if (arg === '--help' || arg === '-h') {
      console.log(usage)
      for (const s of specs) console.log(`  --${s.name}${s.boolean === true ? '' : ' <value>'}`.padEnd(28) + s.help + (s.env !== undefined ? ` (env ${s.env})` : ''))
      process.exit(0)
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}; see --help`)
    let name = arg.slice(2)
    let value: string | boolean | undefined
    const eq = name.indexOf('=')
    if (eq >= 0) {
      value = name.slice(eq + 1)
      name = name.slice(0, eq)
    }
    let spec = byName.get(name)
    if (spec === undefined && name.startsWith('no-') && byName.get(name.slice(3))?.boolean === true) {
      spec = byName.get(name.slice(3))
      name = name.slice(3)
      value = false
    }
    if (spec === undefined) throw new Error(`unknown flag --${name}; see --help`)
    if (value === undefined) {
      if (spec.boolean === true) value = true
      else {
        const next = argv[++k]
        if (next === undefined) throw new Error(`--${name} needs a value`)
        value = next
      }
    }
    flags.set(name, value)
  }
  for (const s of specs) {
    if (flags.has(s.name) || s.env === undefined) continue
    const v = process.env[s.env]
    if (v !== undefined && v !== '') flags.set(s.name, s.boolean === true ? !/^(0|false|no)$/i.test(v) : v)
  }
  return flags
}

export function numberFlag (flags: Flags, name: string, fallback: number, min = 0): number {
  const v = flags.get(name)
  if (v === undefined || typeof v === 'boolean') return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${JSON.stringify(v)}`)
  return n
}

export function boolFlag (flags: Flags, name: string, fallback: boolean): boolean {
  const v = flags.get(name)
  if (v === undefined) return fallback
  if (typeof v === 'boolean') return v
  return !/^(0|false|no)$/i.test(v)
}
