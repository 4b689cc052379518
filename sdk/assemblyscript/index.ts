// AssemblyScript's compiler resolves `import ... from "@podplug/sdk"` to this
// file (node_modules/@podplug/sdk/index.ts); the SDK lives in assembly/.
export * from "./assembly/index";
