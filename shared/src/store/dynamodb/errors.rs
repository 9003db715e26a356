//! How DynamoDB's failures become the store port's [`StoreError`]: throttling and outages
//! may pass, a missing table or an unreadable item will not.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

pub(super) fn store_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    operation: &str,
    err: SdkError<E, R>,
) -> StoreError {
    match err.code() {
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => StoreError::Throttled(format!(
            "{operation}: {}",
            err.message().unwrap_or("throttled")
        )),
        Some("ResourceNotFoundException") => {
            StoreError::NotFound(format!("{operation}: {}", describe(&err)))
        }
        Some("ConditionalCheckFailedException" | "TransactionConflictException") => {
            StoreError::ConditionFailed(format!("{operation}: {}", describe(&err)))
        }
        _ => StoreError::Unavailable(format!("{operation}: {}", describe(&err))),
    }
}

pub(super) fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{err:?}"),
    }
}

pub(super) fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

/// Whether a conditional write happened (`false`: its condition did not hold).
pub(super) fn conditional<O, R: std::fmt::Debug>(
    result: Result<
        O,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            R,
        >,
    >,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(err) => Err(store_error("UpdateItem", err)),
    }
}
