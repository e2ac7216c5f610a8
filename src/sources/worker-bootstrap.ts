// Source for `new Worker(..., { eval: true })` that imports a module as the worker's code.
// Run from TypeScript under tsx (tests, `npm run dev`), the worker must register tsx itself:
// Node 20 does not hand the `--import` loader on to worker threads. The compiled build needs
// nothing of the sort.
export function workerBootstrap (moduleUrl: string): string {
  const loader = moduleUrl.endsWith('.ts')
    ? `const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}); register();`
    : ''
  return `(async () => { ${loader} await import(${JSON.stringify(moduleUrl)}) })()`
}
