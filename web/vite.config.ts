import react from '@vitejs/plugin-react'
import { defineConfig } from 'vitest/config'

// The coordinator's API, proxied by `npm run dev` so the page and the API share an origin.
const API_TARGET = 'http://127.0.0.1:8000'
const API_PATHS = [
  '/events',
  '/upload',
  '/jobs',
  '/result',
  '/inputs',
  '/ops',
  '/workers',
  '/queue_size',
  '/tps',
  '/task',
]

export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: index.html finds assets/ beside itself wherever the coordinator mounts it.
  base: './',
  server: {
    proxy: Object.fromEntries(API_PATHS.map((path) => [path, { target: API_TARGET, changeOrigin: true }])),
  },
  build: {
    outDir: '../src/sd_coordinator/static',
    emptyOutDir: true,
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    restoreMocks: true,
  },
})
