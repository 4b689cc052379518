// @podplug/sdk: write podplug plugins (ABI v1, docs/abi.md) in AssemblyScript.
//
// A plugin's entry file re-exports the two required functions and exports one
// function per hook it implements:
//
//   import { HookRequest, Mutations, onPodCreate } from "@podplug/sdk";
//   export { podplug_abi_version, podplug_alloc } from "@podplug/sdk";
//   export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
//     return onPodCreate(ptr, len, create);
//   }
//   function create(req: HookRequest): Mutations { ... }

export { Decoder, Kind, Value, Writer, decode, MAX_DEPTH } from "./msgpack";
export {
  Config, ConfigErrors, Container, ContainerSelection, EnvVar, HookRequest, ModelServing, Pod, StringMap,
  isQuantity,
} from "./request";
export {
  Mutations, configMapVolume, downwardAPIFile, downwardAPIVolume, emptyDirVolume, fieldRef, nodeSelectorTerm,
  requirement, resourceFieldRef, toleration, volumeMount,
} from "./mutations";
export {
  ABI_VERSION, ConfigCheck, Hook, log, onPodCreate, onPodReady, podplug_abi_version,
  podplug_alloc, respondWith, validateConfig,
} from "./abi";
