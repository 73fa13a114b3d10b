// What the signed-in user may do, from the page's startup data: the dashboard hides controls
// the API would refuse (etcdmonitor_site/policy.py decides; this only spares a 403).
// Roles are per cluster, "*" for the clusters not named; READ_ONLY refuses every change to
// an etcd cluster, admins included.
import { jsonData } from "./common.js";

const boot = jsonData("boot-data");
const RANK = { viewer: 0, operator: 1, admin: 2 };

export const readOnly = !!boot.read_only;

export function roleOn(clusterId) {
  const roles = boot.roles || {};
  const role = roles[clusterId] || roles["*"] || "viewer";
  return role in RANK ? role : "viewer";
}
export function allows(role, clusterId) {
  return RANK[roleOn(clusterId || "default")] >= RANK[role];
}
// A change to the cluster's etcd (KV writes, defragment, compact, move-leader, disarm).
export function mayChange(role, clusterId) {
  return !readOnly && allows(role, clusterId);
}
// The product's own settings (every cluster's role counts; users admins hold them all).
export function globalAllows(role) {
  return !!boot.can_manage_users || allows(role, "*");
}
// The name a typed confirmation asks for on the configured cluster.
export const defaultClusterName = boot.cluster_name || "default";
