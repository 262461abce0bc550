#!/usr/bin/env node
// Runs the TypeScript sources through tsx so `npx skjol` works from a plain install.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
