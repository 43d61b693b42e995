// kanaria's web UI build: bundles ui/src with esbuild's JS API into OUT_DIR, for
// tools/embed_assets.py to embed in the binary (CMake runs both; see ui/CMakeLists.txt).
//
//   node ui/build.mjs NODE_MODULES OUT_DIR
//
// NODE_MODULES is where `npm ci` installed ui/package-lock.json (the build dir, never ui/).
// Writes OUT_DIR/index.html (ui/index.html as is), OUT_DIR/app.js (src/main.js and what it
// imports: one minified ES module, target es2020, no source map), OUT_DIR/app.css (uPlot's
// stylesheet, then src/style.css and what it imports, minified) and OUT_DIR/sizes.json (the bytes
// each npm package puts into app.js, for the page-weight budget check).
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function fail(msg) {
    console.error(`ui/build.mjs: ${msg}`);
    process.exit(1);
}

if (process.argv.length !== 4) {
    fail('usage: node ui/build.mjs NODE_MODULES OUT_DIR');
}
const nodeModules = path.resolve(process.argv[2]);
const outDir = path.resolve(process.argv[3]);
let esbuild;
try {
    esbuild = createRequire(path.join(nodeModules, 'noop.js'))('esbuild');
} catch (e) {
    fail(`cannot load esbuild from '${nodeModules}' (run npm ci there): ${e.message}`);
}

const common = {
    bundle: true,
    minify: true,
    target: 'es2020',
    sourcemap: false,
    write: false,
    metafile: true,
    logLevel: 'error',
    // the packages come from the build dir's node_modules, not from beside the sources
    nodePaths: [nodeModules],
    absWorkingDir: here,
    // images in CSS are inlined (CSP allows img-src data:); nothing is fetched at run time
    loader: { '.svg': 'dataurl', '.png': 'dataurl' },
};

// One output file of a build: its contents. A build that emits anything else is refused.
function only(result, ext, what) {
    const files = result.outputFiles.filter((f) => f.path.endsWith(ext));
    const other = result.outputFiles.filter((f) => !f.path.endsWith(ext));
    if (files.length !== 1 || other.length !== 0) {
        fail(`${what} gave ${result.outputFiles.map((f) => path.basename(f.path)).join(', ')}; ` +
            `want one ${ext} file (import CSS from src/style.css, not from JavaScript)`);
    }
    return files[0].contents;
}

// The bytes each npm package contributes to the bundle (the path after its last node_modules/).
function packageSizes(metafile) {
    const sizes = {};
    for (const out of Object.values(metafile.outputs)) {
        for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
            const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
            const name = m ? m[1] : '(kanaria)';
            sizes[name] = (sizes[name] || 0) + bytesInOutput;
        }
    }
    return sizes;
}

async function main() {
    mkdirSync(outDir, { recursive: true });
    let js, css;
    try {
        js = await esbuild.build({
            ...common,
            entryPoints: ['src/main.js'],
            outfile: path.join(outDir, 'app.js'),
            format: 'esm',
            define: { 'process.env.NODE_ENV': '"production"' },
        });
        css = await esbuild.build({
            ...common,
            stdin: {
                contents: '@import "./node_modules_uplot.css";\n@import "./src/style.css";\n',
                resolveDir: here,
                loader: 'css',
            },
            outfile: path.join(outDir, 'app.css'),
            plugins: [{
                // uPlot's stylesheet from the build dir's node_modules, before kanaria's own
                name: 'uplot-css',
                setup(b) {
                    b.onResolve({ filter: /^\.\/node_modules_uplot\.css$/ }, () => ({
                        path: path.join(nodeModules, 'uplot', 'dist', 'uPlot.min.css'),
                    }));
                },
            }],
        });
    } catch (e) {
        fail(`esbuild failed: ${e.message}`); // esbuild printed the located errors already
    }
    writeFileSync(path.join(outDir, 'app.js'), only(js, '.js', 'src/main.js'));
    writeFileSync(path.join(outDir, 'app.css'), only(css, '.css', 'the stylesheets'));
    copyFileSync(path.join(here, 'index.html'), path.join(outDir, 'index.html'));
    writeFileSync(path.join(outDir, 'sizes.json'),
        JSON.stringify({ packages: packageSizes(js.metafile) }, null, 2) + '\n');
}

main();
