#!/usr/bin/env node
// `npx relaykey …`: the compiled CLI (npm ci builds dist/ through the prepare script).
import '../dist/src/cli.js'
