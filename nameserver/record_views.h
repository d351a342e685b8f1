// What callers see of a stored registration: the Bind reply (the binding
// rule lives here) and the summary of List and Watch.
//
// The binding rule, per method (docs/services.md has the table):
//   * registered FUNCTION_SHIPPING                -> FUNCTION_SHIPPING
//   * DATA_SHIPPING or AUTO, but no code for the
//     caller's machine type                       -> FUNCTION_SHIPPING
//   * caller in the home's process (same job id
//     and rank): trusted                          -> TRUSTED_DIRECT
//                untrusted                        -> UNTRUSTED_GATED
//   * elsewhere, trusted                          -> DATA_SHIPPING or AUTO (as registered)
//   * elsewhere, untrusted                        -> FUNCTION_SHIPPING: running
//     the code here needs the remote keys, which only trusted callers get.
// Trusted means: the caller is the owner or one of trusted_principals.
// Segments and domains are returned to every caller (addresses are not
// secrets; the keys are what grants access); keys only to trusted callers.
#ifndef GASP_NAMESERVER_RECORD_VIEWS_H_
#define GASP_NAMESERVER_RECORD_VIEWS_H_

#include "absl/strings/string_view.h"
#include "nameserver/nameserver.pb.h"
#include "nameserver/state.pb.h"

namespace gasp {
namespace nameserver {

// True when `principal` is the owner of `record` or one of its trusted
// principals (exact, case-sensitive comparison of the subject strings).
bool IsTrusted(const v1::ServiceRecord& record, absl::string_view principal);

// The Bind reply for `principal` (already authenticated) asking `request`
// of `record`. Pure function of its arguments.
v1::BindReply MakeBinding(const v1::ServiceRecord& record, absl::string_view principal,
                          const v1::BindRequest& request);

// The List/Watch view: name, owner, methods, home, endpoint, machine types.
v1::ServiceSummary MakeSummary(const v1::ServiceRecord& record);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_RECORD_VIEWS_H_
