// Prints, one a line, the value exports of the module "ngx.ipc" as a declaration
// file declares it (functions, constants, and a namespace's members as
// "cluster.broadcast"), read through the TypeScript compiler rather than a regex so
// overloads, comments and formatting cannot fool the comparison in typed_spec.
//   node t/lib/dts_exports.js types/ngx.ipc.d.ts
"use strict";
const ts = require("typescript");

const file = process.argv[2];
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
const ipc = checker.getAmbientModules().find((m) => m.getName() === '"ngx.ipc"');
if (ipc === undefined) {
    process.stderr.write(`${file} declares no module "ngx.ipc"\n`);
    process.exit(2);
}

function list(symbol, prefix) {
    for (const s of checker.getExportsOfModule(symbol)) {
        if ((s.flags & ts.SymbolFlags.Value) === 0) {
            continue; // a type or interface: nothing in the Lua table
        }
        console.log(prefix + s.getName());
        if (s.flags & ts.SymbolFlags.Namespace) {
            list(s, prefix + s.getName() + ".");
        }
    }
}
list(ipc, "");
