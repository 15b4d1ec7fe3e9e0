//! Rendering an error for the operator: the message and every cause under it, on one line.

/// An error with its whole cause chain, which is where the useful part (connection refused,
/// certificate unknown, the missing import) usually is.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
