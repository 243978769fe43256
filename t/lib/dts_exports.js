// Prints, one a line, the value exports of the module "ngx.ipc" (or the module
// named second, a drop-in: "ngx.ipc.events") as a declaration file declares it (functions, constants, and a namespace's members as
// "cluster.broadcast"), read through the TypeScript compiler rather than a regex so
// overloads, comments and formatting cannot fool the comparison in typed_spec.
//   node t/lib/dts_exports.js types/ngx.ipc.d.ts [ngx.ipc.events]
"use strict";
const ts = require("typescript");

const file = process.argv[2];
const name = process.argv[3] || "ngx.ipc";
const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    types: ["@typescript-to-lua/language-extensions"],
});
const errors = ts.getPreEmitDiagnostics(program);
if (errors.length > 0) {
    process.stderr.write(ts.formatDiagnostics(errors, {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => process.cwd(),
        getNewLine: () => "\n",
    }));
    process.exit(2);
}
const checker = program.getTypeChecker();
const ipc = checker.getAmbientModules().find((m) => m.getName() === `"${name}"`);
if (ipc === undefined) {
    process.stderr.write(`${file} declares no module "${name}"\n`);
    process.exit(2);
}

function list(symbol, prefix) {
    for (const exported of checker.getExportsOfModule(symbol)) {
        // `export { new_ as new }`: "new" cannot name a declaration
        const s = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
        if ((s.flags & ts.SymbolFlags.Value) === 0) {
            continue; // a type or interface: nothing in the Lua table
        }
        console.log(prefix + exported.getName());
        if (s.flags & ts.SymbolFlags.Namespace) {
            list(s, prefix + exported.getName() + ".");
        }
    }
}
list(ipc, "");
