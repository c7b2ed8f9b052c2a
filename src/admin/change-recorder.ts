// Puts every admin mutation into the change log: the resource as the admin API shows it before
// and after (so secrets appear only as references), field by field, under the caller's token
// name and the request id. The record follows the change it describes: should the store fail
// in between, the caller gets a 5xx saying the change may have been applied.
import type { ChangeAction, ResourceType } from '../admin-changes/admin-change.js'
import { fieldChanges } from '../admin-changes/admin-change.js'
import type { ControlStore } from '../store/control-store.js'
import type { AdminCall } from './reply.js'

export class ChangeRecorder {
  readonly #store: ControlStore

  constructor (store: ControlStore) {
    this.#store = store
  }

  /** `before`/`after`: the resource's admin API view, null where it does not exist */
  async record (call: AdminCall, action: ChangeAction, type: ResourceType, id: string, before: object | null, after: object | null): Promise<void> {
    const changes = fieldChanges(before, after)
    // a PATCH that set every field to what it was changed nothing
    if (action === 'update' && Object.keys(changes).length === 0) return
    await this.#store.appendChange({ request_id: call.requestId, token_name: call.caller.name, action, resource_type: type, resource_id: id, changes })
  }
}
