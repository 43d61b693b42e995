// kanaria's web UI: the entry point esbuild bundles into /app.js.
import { render } from 'preact';
import { html } from 'htm/preact';

render(html`<main><h1>kanaria</h1></main>`, document.getElementById('root'));
