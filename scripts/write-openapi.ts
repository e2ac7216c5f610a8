// `npm run openapi`: regenerates openapi/openapi.json from the routes' schemas.
import { writeFile } from 'node:fs/promises'
import { renderOpenApi } from '../src/openapi-document.js'

const target = new URL('../openapi/openapi.json', import.meta.url)
await writeFile(target, await renderOpenApi())
console.log(`wrote ${target.pathname}`)
