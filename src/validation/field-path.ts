// The dotted name of the field a ValidationError reports (`retry.max_attempts`,
// `allow[1].path`), built as a validator descends into a JSON value.

/** `parent.key`, or `key` at the top level */
export function child (parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`
}

/** `parent[index]` */
export function item (parent: string, index: number): string {
  return `${parent}[${index}]`
}
