// What the benchmark upstream answers to every request, shared so a scenario can check that a
// proxy passed it through unchanged before it measures anything.

export const UPSTREAM_BODY = JSON.stringify({
  id: 'itm_01HZX3K9Q2',
  name: 'benchmark item',
  status: 'active',
  updated_at: '2025-01-01T00:00:00Z',
})
