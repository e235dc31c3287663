/** The code could not be formatted as written (a syntax error): the message is short and says where. */
export class FormatError extends Error {
  override name = "FormatError";
}
