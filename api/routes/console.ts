import fs from 'node:fs';
import path from 'node:path';
import express, { Router } from 'express';
import type { Config } from '../../lib/config';

/** Where `npm run build` (scripts/console-build.ts) writes the console's page and assets. */
export const CONSOLE_DIR = path.resolve(__dirname, '../../dist/console');

/**
 * The web console: a static page that calls the public /api/v1 with the key a person signs in with. It
 * holds no secret, so it is public like /health; `/console/config.json` tells it where the Temporal Web UI is.
 * Scripts and styles come from this origin only (no inline code, no CDN).
 */
export function consoleRoutes(config: Config, dir = CONSOLE_DIR): Router {
  const router = Router();
  router.use((_req, res, next) => {
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    );
    next();
  });
  router.get('/config.json', (_req, res) => {
    res.json({ temporalUiUrl: config.TEMPORAL_UI_URL.replace(/\/+$/, ''), namespace: config.TEMPORAL_NAMESPACE });
  });
  router.use('/assets', express.static(path.join(dir, 'assets'), { index: false, maxAge: 0 }));
  router.get('/', (req, res) => {
    // Relative asset URLs need the trailing slash.
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) return res.redirect(301, `${req.baseUrl}/`);
    const index = path.join(dir, 'index.html');
    if (!fs.existsSync(index)) {
      res
        .status(503)
        .type('text/plain')
        .send('The console is not built: run `npm run build` (npm start builds it too).');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  });
  return router;
}
