#include "rpcgen/generator.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gasp/options.pb.h"
#include "google/protobuf/compiler/cpp/names.h"
#include "google/protobuf/io/printer.h"
#include "google/protobuf/io/zero_copy_stream.h"

namespace gasp {
namespace rpcgen {
namespace {

using google::protobuf::FileDescriptor;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;
using google::protobuf::SourceLocation;
using google::protobuf::compiler::GeneratorContext;
using google::protobuf::io::Printer;
using Vars = std::map<std::string, std::string>;

// Names the generated classes declare themselves. A method with one of these
// names would clash inside Service or Stub (or, as kServiceName, with the
// constant); a service named Service or Stub would contain a nested class of
// its own name.
const absl::flat_hash_set<absl::string_view>& ReservedMethodNames() {
  static const auto* names = new absl::flat_hash_set<absl::string_view>{
      "Service", "Stub", "Bind", "binding", "methods", "service_name", "ServiceName"};
  return *names;
}

const absl::flat_hash_set<absl::string_view>& ReservedServiceNames() {
  static const auto* names = new absl::flat_hash_set<absl::string_view>{"Service", "Stub"};
  return *names;
}

// Proto identifiers that are C++ keywords (C++17 plus the alternative
// operator spellings): such names would not compile, and unlike message
// fields there is no established renaming for methods.
bool IsCppKeyword(absl::string_view name) {
  static const auto* keywords = new absl::flat_hash_set<absl::string_view>{
      "alignas",   "alignof",      "and",         "and_eq",     "asm",         "auto",
      "bitand",    "bitor",        "bool",        "break",      "case",        "catch",
      "char",      "char16_t",     "char32_t",    "class",      "compl",       "const",
      "constexpr", "const_cast",   "continue",    "decltype",   "default",     "delete",
      "do",        "double",       "dynamic_cast", "else",      "enum",        "explicit",
      "export",    "extern",       "false",       "float",      "for",         "friend",
      "goto",      "if",           "inline",      "int",        "long",        "mutable",
      "namespace", "new",          "noexcept",    "not",        "not_eq",      "nullptr",
      "operator",  "or",           "or_eq",       "private",    "protected",   "public",
      "register",  "reinterpret_cast", "return",  "short",      "signed",      "sizeof",
      "static",    "static_assert", "static_cast", "struct",    "switch",      "template",
      "this",      "thread_local", "throw",       "true",       "try",         "typedef",
      "typeid",    "typename",     "union",       "unsigned",   "using",       "virtual",
      "void",      "volatile",     "wchar_t",     "while",      "xor",         "xor_eq"};
  return keywords->contains(name);
}

// "a.b" -> "a::b"; the same mapping protoc's C++ generator uses, so the
// service classes share the namespace of the file's messages.
std::string CppNamespace(const FileDescriptor* file) {
  return absl::StrReplaceAll(file->package(), {{".", "::"}});
}

// Fully qualified C++ name of the service's generated class.
std::string QualifiedServiceClass(const ServiceDescriptor* service) {
  std::string ns = CppNamespace(service->file());
  return ns.empty() ? absl::StrCat("::", service->name())
                    : absl::StrCat("::", ns, "::", service->name());
}

// Message types are always written fully qualified: requests and replies
// may come from other packages, and a package component such as `gasp` or
// `absl` must not capture names.
std::string MessageClass(const google::protobuf::Descriptor* message) {
  return google::protobuf::compiler::cpp::QualifiedClassName(message);
}

gasp::InvocationKind KindOf(const MethodDescriptor* method) {
  return method->options().GetExtension(gasp::invocation);
}

struct KindText {
  const char* enumerator;  // ::gasp::rpc::Kind
  const char* service;     // comment on the Service method
  const char* stub;        // comment on the Stub method
};

KindText TextOf(gasp::InvocationKind kind) {
  switch (kind) {
    case gasp::DATA_SHIPPING:
      return {"kDataShipping",
              "DATA_SHIPPING: may run in any client's process; keep state in global memory.",
              "DATA_SHIPPING: runs here when possible; the pages it touches come to it."};
    case gasp::FUNCTION_SHIPPING:
      return {"kFunctionShipping", "FUNCTION_SHIPPING: runs at the service's home rank.",
              "FUNCTION_SHIPPING: runs at the home rank, GlobalRef pages bundled with the call."};
    default:
      return {"kAuto",
              "AUTO: runs at the home rank or in a client's process, chosen per call.",
              "AUTO: data or function shipping, chosen per call by the binding."};
  }
}

// The .proto comment written just before `descriptor`, as C++ comment lines
// ready for Printer::Print (so '$' is doubled); empty when protoc passed no
// source info.
template <typename Descriptor>
std::string LeadingComment(const Descriptor* descriptor) {
  SourceLocation location;
  if (!descriptor->GetSourceLocation(&location)) return "";
  std::string text = absl::StrReplaceAll(location.leading_comments, {{"$", "$$"}});
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) return "";
  std::string out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::string comment = absl::StrCat("//", line);
    absl::StripTrailingAsciiWhitespace(&comment);
    absl::StrAppend(&out, comment, "\n");
  }
  return out;
}

// An include guard from the .proto's path: "a/b-c.proto" -> A_B_C_PROTO_GASP_H_.
std::string IncludeGuard(const std::string& proto_name) {
  std::string guard;
  for (char c : proto_name) {
    guard.push_back(absl::ascii_isalnum(c) ? absl::ascii_toupper(c) : '_');
  }
  return guard + "_GASP_H_";
}

std::string CheckFile(const FileDescriptor* file) {
  for (int s = 0; s < file->service_count(); ++s) {
    const ServiceDescriptor* service = file->service(s);
    if (ReservedServiceNames().contains(service->name()) || IsCppKeyword(service->name())) {
      return absl::StrCat("gasp service name clashes with generated C++: ", service->full_name());
    }
    for (int m = 0; m < service->method_count(); ++m) {
      const MethodDescriptor* method = service->method(m);
      if (method->client_streaming() || method->server_streaming()) {
        return absl::StrCat("gasp services support unary methods only: ", method->full_name());
      }
      if (ReservedMethodNames().contains(method->name()) || IsCppKeyword(method->name())) {
        return absl::StrCat("gasp method name clashes with generated C++: ", method->full_name(),
                            " (reserved: Service, Stub, Bind, binding, methods, service_name, "
                            "ServiceName, and C++ keywords)");
      }
      switch (KindOf(method)) {
        case gasp::AUTO:
        case gasp::DATA_SHIPPING:
        case gasp::FUNCTION_SHIPPING:
          break;
        default:
          return absl::StrCat("unknown gasp.invocation value ", static_cast<int>(KindOf(method)),
                              " on ", method->full_name());
      }
    }
  }
  return "";
}

void PrintHeaderService(const ServiceDescriptor* service, Printer* p) {
  Vars vars = {{"name", service->name()}, {"full_name", service->full_name()}};
  p->Print(LeadingComment(service).c_str());
  p->Print(vars,
           "// Service $full_name$: the Service base its implementation derives from and\n"
           "// the Stub clients call (gasp/service.h).\n"
           "class $name$ {\n"
           " public:\n");
  p->Indent();
  p->Print(vars,
           "// The name the name server and GASP_SERVICE_IMPL know the service by.\n"
           "static constexpr char kServiceName[] = \"$full_name$\";\n"
           "// Index of each method in methods() and in Binding::Call.\n"
           "enum Method : int {");
  for (int m = 0; m < service->method_count(); ++m) {
    p->Print("$sep$k$method$ = $index$", "sep", m == 0 ? " " : ", ", "method",
             service->method(m)->name(), "index", absl::StrCat(m));
  }
  p->Print(service->method_count() > 0 ? " };\n" : "};\n");

  p->Print(
      "\n"
      "// Server base: implement the methods; state lives in global memory (see\n"
      "// gasp/service.h).\n"
      "class Service : public ::gasp::rpc::ServiceBase {\n"
      " public:\n");
  p->Indent();
  for (int m = 0; m < service->method_count(); ++m) {
    const MethodDescriptor* method = service->method(m);
    Vars mv = {{"method", method->name()},
               {"request", MessageClass(method->input_type())},
               {"reply", MessageClass(method->output_type())},
               {"kind_comment", TextOf(KindOf(method)).service}};
    p->Print(LeadingComment(method).c_str());
    p->Print(mv,
             "// $kind_comment$\n"
             "virtual ::gasp::Status $method$(const $request$& request, $reply$* reply) = 0;\n");
  }
  p->Print(
      "// kServiceName.\n"
      "const char* service_name() const override { return kServiceName; }\n"
      "// One entry per method, indexed by Method.\n"
      "::gasp::rpc::MethodTable methods() const override;\n");
  p->Outdent();
  p->Print("};\n");

  p->Print(
      "\n"
      "// Client stub: each method dispatches along the binding's path.\n"
      "class Stub {\n"
      " public:\n");
  p->Indent();
  // Bind is defined here rather than in the .cc so that only programs that
  // actually bind through the name server need Binding::Bind linked in;
  // tests and tools that bring their own Binding do not.
  p->Print(
      "// Binds through the name server (gasp::rpc::Binding::Bind(kServiceName)).\n"
      "static ::gasp::Result<Stub> Bind() {\n"
      "  ::gasp::Result<::std::shared_ptr<::gasp::rpc::Binding>> binding =\n"
      "      ::gasp::rpc::Binding::Bind(kServiceName);\n"
      "  if (!binding.ok()) return binding.status();\n"
      "  return Stub(*::std::move(binding));\n"
      "}\n"
      "// Calls go through `binding`, which must not be null.\n"
      "explicit Stub(::std::shared_ptr<::gasp::rpc::Binding> binding);\n");
  for (int m = 0; m < service->method_count(); ++m) {
    const MethodDescriptor* method = service->method(m);
    Vars mv = {{"method", method->name()},
               {"request", MessageClass(method->input_type())},
               {"reply", MessageClass(method->output_type())},
               {"kind_comment", TextOf(KindOf(method)).stub}};
    p->Print(LeadingComment(method).c_str());
    p->Print(mv,
             "// $kind_comment$\n"
             "::gasp::Result<$reply$> $method$(const $request$& request);\n");
  }
  p->Print(
      "// The binding calls go through (its stats, ForcePath).\n"
      "::gasp::rpc::Binding& binding() const;\n"
      "\n");
  p->Outdent();
  p->Print(
      " private:\n"
      "  ::std::shared_ptr<::gasp::rpc::Binding> binding_;\n"
      "};\n");
  p->Outdent();
  p->Print("};\n");
}

void PrintSourceService(const ServiceDescriptor* service, Printer* p) {
  Vars vars = {{"name", service->name()}, {"qualified", QualifiedServiceClass(service)}};
  p->Print(vars,
           "\n"
           "::gasp::rpc::MethodTable $name$::Service::methods() const {\n");
  p->Indent();
  if (service->method_count() == 0) {
    p->Print("return {};\n");
  } else {
    // A function-local static: the table points at default instances, which
    // exist only once protobuf's static initialization has run, and
    // GASP_SERVICE_IMPL code may ask for it during static initialization.
    p->Print("static const ::gasp::rpc::MethodInfo kMethods[] = {\n");
    p->Indent();
    for (int m = 0; m < service->method_count(); ++m) {
      const MethodDescriptor* method = service->method(m);
      Vars mv = {{"qualified", QualifiedServiceClass(service)},
                 {"method", method->name()},
                 {"kind", TextOf(KindOf(method)).enumerator},
                 {"request", MessageClass(method->input_type())},
                 {"reply", MessageClass(method->output_type())}};
      // The service class is named fully qualified: inside Service a method
      // may share the service's name and hide it.
      p->Print(mv,
               "{\"$method$\", ::gasp::rpc::Kind::$kind$, &$request$::default_instance(),\n"
               " &$reply$::default_instance(),\n"
               " [](::gasp::rpc::ServiceBase* impl, const ::google::protobuf::Message& request,\n"
               "    ::google::protobuf::Message* reply) -> ::gasp::Status {\n"
               "   return static_cast<$qualified$::Service*>(impl)->$method$(\n"
               "       static_cast<const $request$&>(request), static_cast<$reply$*>(reply));\n"
               " }},\n");
    }
    p->Outdent();
    p->Print("};\nreturn kMethods;\n");
  }
  p->Outdent();
  p->Print("}\n");

  p->Print(vars,
           "\n"
           "$name$::Stub::Stub(::std::shared_ptr<::gasp::rpc::Binding> binding)\n"
           "    : binding_(::std::move(binding)) {}\n");
  for (int m = 0; m < service->method_count(); ++m) {
    const MethodDescriptor* method = service->method(m);
    Vars mv = {{"name", service->name()},
               {"method", method->name()},
               {"request", MessageClass(method->input_type())},
               {"reply", MessageClass(method->output_type())}};
    p->Print(mv,
             "\n"
             "::gasp::Result<$reply$> $name$::Stub::$method$(const $request$& request) {\n"
             "  $reply$ reply;\n"
             "  ::gasp::Status status = binding_->Call(k$method$, request, &reply);\n"
             "  if (!status.ok()) return status;\n"
             "  return reply;\n"
             "}\n");
  }
  p->Print(vars,
           "\n"
           "::gasp::rpc::Binding& $name$::Stub::binding() const { return *binding_; }\n");
}

void PrintNamespaceOpen(const FileDescriptor* file, Printer* p) {
  if (!file->package().empty()) p->Print("\nnamespace $ns$ {\n", "ns", CppNamespace(file));
}

void PrintNamespaceClose(const FileDescriptor* file, Printer* p) {
  if (!file->package().empty()) p->Print("\n}  // namespace $ns$\n", "ns", CppNamespace(file));
}

void PrintHeader(const FileDescriptor* file, const std::string& base, Printer* p) {
  Vars vars = {{"proto", file->name()},
               {"base", base},
               {"file", base.substr(base.rfind('/') + 1)},
               {"guard", IncludeGuard(file->name())}};
  p->Print(vars,
           "// $file$.gasp.h — generated by protoc-gen-gasp from $proto$. DO NOT EDIT.\n"
           "#ifndef $guard$\n"
           "#define $guard$\n"
           "\n"
           "#include <memory>\n"
           "#include <utility>\n"
           "\n"
           "#include \"gasp/service.h\"\n"
           "#include \"$base$.pb.h\"\n");
  if (file->service_count() > 0) {
    PrintNamespaceOpen(file, p);
    for (int s = 0; s < file->service_count(); ++s) {
      p->Print("\n");
      PrintHeaderService(file->service(s), p);
    }
    PrintNamespaceClose(file, p);
  }
  p->Print(vars, "\n#endif  // $guard$\n");
}

void PrintSource(const FileDescriptor* file, const std::string& base, Printer* p) {
  Vars vars = {{"proto", file->name()},
               {"base", base},
               {"file", base.substr(base.rfind('/') + 1)}};
  p->Print(vars,
           "// $file$.gasp.cc — generated by protoc-gen-gasp from $proto$. DO NOT EDIT.\n"
           "#include \"$base$.gasp.h\"\n");
  if (file->service_count() == 0) return;
  PrintNamespaceOpen(file, p);
  for (int s = 0; s < file->service_count(); ++s) PrintSourceService(file->service(s), p);
  PrintNamespaceClose(file, p);
}

}  // namespace

bool GaspGenerator::Generate(const FileDescriptor* file, const std::string& parameter,
                             GeneratorContext* context, std::string* error) const {
  if (!parameter.empty()) {
    *error = absl::StrCat("protoc-gen-gasp takes no parameters, got '", parameter, "'");
    return false;
  }
  std::string problem = CheckFile(file);
  if (!problem.empty()) {
    *error = problem;
    return false;
  }
  const std::string base = google::protobuf::compiler::cpp::StripProto(file->name());
  {
    std::unique_ptr<google::protobuf::io::ZeroCopyOutputStream> out(
        context->Open(base + ".gasp.h"));
    Printer printer(out.get(), '$');
    PrintHeader(file, base, &printer);
    if (printer.failed()) {
      *error = "cannot write " + base + ".gasp.h";
      return false;
    }
  }
  {
    std::unique_ptr<google::protobuf::io::ZeroCopyOutputStream> out(
        context->Open(base + ".gasp.cc"));
    Printer printer(out.get(), '$');
    PrintSource(file, base, &printer);
    if (printer.failed()) {
      *error = "cannot write " + base + ".gasp.cc";
      return false;
    }
  }
  return true;
}

}  // namespace rpcgen
}  // namespace gasp
