// What the whole page shares: the caller (GET /api/v1/me) and its networks (GET /api/v1/networks).
export const context = { me: null, networks: [] };

export function network(id) {
  return context.networks.find((n) => n.id === id);
}

export function can(permission) {
  return Boolean(context.me && context.me.permissions.includes(permission));
}
