/** Strict-Transport-Security for https deployments: two years with subdomains, the value preload lists ask for. */
export const HSTS = "max-age=63072000; includeSubDomains";
