//! The S3 front end: the `s3s::S3` implementation for the requests s3s parses itself, once it
//! has authenticated and authorized ([`crate::doors::auth`]) them. GetObject and HeadObject go to the
//! engine's read path; ListBuckets is narrowed to the caller's buckets; a browser-form upload
//! (which s3s hands over as a PutObject) goes to the engine's write path. Every other request,
//! every write that changes an object among them, is taken before it gets here by
//! [`crate::doors::pass_through`] and forwarded as sent; the typed pass-through handlers below
//! remain for what that route does not take (requests on the service root, which s3s routes
//! itself). Every operation is counted and timed here.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::doors::auth::{self, Authorizer};
use crate::engine::Engine;

/// The `S3` service clients talk to.
#[derive(Clone)]
pub struct Front {
    engine: Arc<Engine>,
    authorizer: Arc<Authorizer>,
}

impl Front {
    /// A front end over `engine`; ListBuckets answers show what `authorizer` lets the caller
    /// see.
    #[must_use]
    pub fn new(engine: Arc<Engine>, authorizer: Arc<Authorizer>) -> Self {
        Self { engine, authorizer }
    }

    /// Runs one operation, counting and timing it.
    async fn timed<T>(&self, operation: &'static str, call: impl Future<Output = S3Result<T>>) -> S3Result<T> {
        let started = Instant::now();
        let result = call.await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        };
        self.engine.metrics().request(operation, label, started.elapsed());
        result
    }

    /// An operation the cache has no part in: straight to the origin.
    async fn pass<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = S3Result<S3Response<T>>>,
    ) -> S3Result<S3Response<T>> {
        self.timed(operation, self.engine.origin().call(operation, call)).await
    }

    /// GetObject: the engine's read path.
    ///
    /// # Errors
    /// The S3 error to answer with.
    pub async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.timed("GetObject", self.engine.get_object(req)).await
    }

    /// HeadObject: the engine's read path.
    ///
    /// # Errors
    /// The S3 error to answer with.
    pub async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.timed("HeadObject", self.engine.head_object(req)).await
    }

    /// PutObject: the engine's write path (origin, then write-through).
    ///
    /// # Errors
    /// The S3 error to answer with.
    pub async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.timed("PutObject", self.engine.put_object(req)).await
    }

    /// ListBuckets: the origin's list, narrowed to the buckets the caller has a grant in.
    ///
    /// # Errors
    /// The S3 error to answer with.
    pub async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = auth::caller(&req);
        // s3s names only signed and unsigned callers.
        let owned_caller = match caller {
            auth::Caller::AccessKey(k) => Some(k.to_owned()),
            auth::Caller::Anonymous | auth::Caller::EventSender(_) => None,
        };
        let mut resp = self
            .pass("ListBuckets", self.engine.origin().s3().list_buckets(req))
            .await?;
        let caller = owned_caller
            .as_deref()
            .map_or(auth::Caller::Anonymous, auth::Caller::AccessKey);
        if let Some(buckets) = resp.output.buckets.as_mut() {
            buckets.retain(|b| {
                b.name
                    .as_deref()
                    .is_some_and(|n| self.authorizer.sees_bucket(caller, n))
            });
        }
        Ok(resp)
    }
}

/// Generates the `S3` impl from two lists: operations with a plain method on [`Front`] above
/// (the reads and the upload the cache takes part in), and operations that go to the origin
/// unchanged.
macro_rules! front {
    (
        own { $($o:ident: $oin:ident => $oout:ident;)* }
        passthrough { $($p:ident: $pin:ident => $pout:ident as $pop:literal;)* }
    ) => {
        #[async_trait::async_trait]
        impl S3 for Front {
            $(
                async fn $o(&self, req: S3Request<$oin>) -> S3Result<S3Response<$oout>> {
                    Front::$o(self, req).await
                }
            )*
            $(
                async fn $p(&self, req: S3Request<$pin>) -> S3Result<S3Response<$pout>> {
                    self.pass($pop, self.engine.origin().s3().$p(req)).await
                }
            )*
        }
    };
}

front! {
    own {
        get_object: GetObjectInput => GetObjectOutput;
        head_object: HeadObjectInput => HeadObjectOutput;
        put_object: PutObjectInput => PutObjectOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
    }
    passthrough {
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput as "AbortMultipartUpload";
        create_bucket: CreateBucketInput => CreateBucketOutput as "CreateBucket";
        create_bucket_metadata_table_configuration: CreateBucketMetadataTableConfigurationInput => CreateBucketMetadataTableConfigurationOutput as "CreateBucketMetadataTableConfiguration";
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput as "CreateMultipartUpload";
        create_session: CreateSessionInput => CreateSessionOutput as "CreateSession";
        delete_bucket: DeleteBucketInput => DeleteBucketOutput as "DeleteBucket";
        delete_bucket_analytics_configuration: DeleteBucketAnalyticsConfigurationInput => DeleteBucketAnalyticsConfigurationOutput as "DeleteBucketAnalyticsConfiguration";
        delete_bucket_cors: DeleteBucketCorsInput => DeleteBucketCorsOutput as "DeleteBucketCors";
        delete_bucket_encryption: DeleteBucketEncryptionInput => DeleteBucketEncryptionOutput as "DeleteBucketEncryption";
        delete_bucket_intelligent_tiering_configuration: DeleteBucketIntelligentTieringConfigurationInput => DeleteBucketIntelligentTieringConfigurationOutput as "DeleteBucketIntelligentTieringConfiguration";
        delete_bucket_inventory_configuration: DeleteBucketInventoryConfigurationInput => DeleteBucketInventoryConfigurationOutput as "DeleteBucketInventoryConfiguration";
        delete_bucket_lifecycle: DeleteBucketLifecycleInput => DeleteBucketLifecycleOutput as "DeleteBucketLifecycle";
        delete_bucket_metadata_table_configuration: DeleteBucketMetadataTableConfigurationInput => DeleteBucketMetadataTableConfigurationOutput as "DeleteBucketMetadataTableConfiguration";
        delete_bucket_metrics_configuration: DeleteBucketMetricsConfigurationInput => DeleteBucketMetricsConfigurationOutput as "DeleteBucketMetricsConfiguration";
        delete_bucket_ownership_controls: DeleteBucketOwnershipControlsInput => DeleteBucketOwnershipControlsOutput as "DeleteBucketOwnershipControls";
        delete_bucket_policy: DeleteBucketPolicyInput => DeleteBucketPolicyOutput as "DeleteBucketPolicy";
        delete_bucket_replication: DeleteBucketReplicationInput => DeleteBucketReplicationOutput as "DeleteBucketReplication";
        delete_bucket_tagging: DeleteBucketTaggingInput => DeleteBucketTaggingOutput as "DeleteBucketTagging";
        delete_bucket_website: DeleteBucketWebsiteInput => DeleteBucketWebsiteOutput as "DeleteBucketWebsite";
        delete_public_access_block: DeletePublicAccessBlockInput => DeletePublicAccessBlockOutput as "DeletePublicAccessBlock";
        get_bucket_accelerate_configuration: GetBucketAccelerateConfigurationInput => GetBucketAccelerateConfigurationOutput as "GetBucketAccelerateConfiguration";
        get_bucket_acl: GetBucketAclInput => GetBucketAclOutput as "GetBucketAcl";
        get_bucket_analytics_configuration: GetBucketAnalyticsConfigurationInput => GetBucketAnalyticsConfigurationOutput as "GetBucketAnalyticsConfiguration";
        get_bucket_cors: GetBucketCorsInput => GetBucketCorsOutput as "GetBucketCors";
        get_bucket_encryption: GetBucketEncryptionInput => GetBucketEncryptionOutput as "GetBucketEncryption";
        get_bucket_intelligent_tiering_configuration: GetBucketIntelligentTieringConfigurationInput => GetBucketIntelligentTieringConfigurationOutput as "GetBucketIntelligentTieringConfiguration";
        get_bucket_inventory_configuration: GetBucketInventoryConfigurationInput => GetBucketInventoryConfigurationOutput as "GetBucketInventoryConfiguration";
        get_bucket_lifecycle_configuration: GetBucketLifecycleConfigurationInput => GetBucketLifecycleConfigurationOutput as "GetBucketLifecycleConfiguration";
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput as "GetBucketLocation";
        get_bucket_logging: GetBucketLoggingInput => GetBucketLoggingOutput as "GetBucketLogging";
        get_bucket_metadata_table_configuration: GetBucketMetadataTableConfigurationInput => GetBucketMetadataTableConfigurationOutput as "GetBucketMetadataTableConfiguration";
        get_bucket_metrics_configuration: GetBucketMetricsConfigurationInput => GetBucketMetricsConfigurationOutput as "GetBucketMetricsConfiguration";
        get_bucket_notification_configuration: GetBucketNotificationConfigurationInput => GetBucketNotificationConfigurationOutput as "GetBucketNotificationConfiguration";
        get_bucket_ownership_controls: GetBucketOwnershipControlsInput => GetBucketOwnershipControlsOutput as "GetBucketOwnershipControls";
        get_bucket_policy: GetBucketPolicyInput => GetBucketPolicyOutput as "GetBucketPolicy";
        get_bucket_policy_status: GetBucketPolicyStatusInput => GetBucketPolicyStatusOutput as "GetBucketPolicyStatus";
        get_bucket_replication: GetBucketReplicationInput => GetBucketReplicationOutput as "GetBucketReplication";
        get_bucket_request_payment: GetBucketRequestPaymentInput => GetBucketRequestPaymentOutput as "GetBucketRequestPayment";
        get_bucket_tagging: GetBucketTaggingInput => GetBucketTaggingOutput as "GetBucketTagging";
        get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput as "GetBucketVersioning";
        get_bucket_website: GetBucketWebsiteInput => GetBucketWebsiteOutput as "GetBucketWebsite";
        get_object_acl: GetObjectAclInput => GetObjectAclOutput as "GetObjectAcl";
        get_object_attributes: GetObjectAttributesInput => GetObjectAttributesOutput as "GetObjectAttributes";
        get_object_legal_hold: GetObjectLegalHoldInput => GetObjectLegalHoldOutput as "GetObjectLegalHold";
        get_object_lock_configuration: GetObjectLockConfigurationInput => GetObjectLockConfigurationOutput as "GetObjectLockConfiguration";
        get_object_retention: GetObjectRetentionInput => GetObjectRetentionOutput as "GetObjectRetention";
        get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput as "GetObjectTagging";
        get_object_torrent: GetObjectTorrentInput => GetObjectTorrentOutput as "GetObjectTorrent";
        get_public_access_block: GetPublicAccessBlockInput => GetPublicAccessBlockOutput as "GetPublicAccessBlock";
        head_bucket: HeadBucketInput => HeadBucketOutput as "HeadBucket";
        list_bucket_analytics_configurations: ListBucketAnalyticsConfigurationsInput => ListBucketAnalyticsConfigurationsOutput as "ListBucketAnalyticsConfigurations";
        list_bucket_intelligent_tiering_configurations: ListBucketIntelligentTieringConfigurationsInput => ListBucketIntelligentTieringConfigurationsOutput as "ListBucketIntelligentTieringConfigurations";
        list_bucket_inventory_configurations: ListBucketInventoryConfigurationsInput => ListBucketInventoryConfigurationsOutput as "ListBucketInventoryConfigurations";
        list_bucket_metrics_configurations: ListBucketMetricsConfigurationsInput => ListBucketMetricsConfigurationsOutput as "ListBucketMetricsConfigurations";
        list_directory_buckets: ListDirectoryBucketsInput => ListDirectoryBucketsOutput as "ListDirectoryBuckets";
        list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput as "ListMultipartUploads";
        list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput as "ListObjectVersions";
        list_objects: ListObjectsInput => ListObjectsOutput as "ListObjects";
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output as "ListObjectsV2";
        list_parts: ListPartsInput => ListPartsOutput as "ListParts";
        put_bucket_accelerate_configuration: PutBucketAccelerateConfigurationInput => PutBucketAccelerateConfigurationOutput as "PutBucketAccelerateConfiguration";
        put_bucket_acl: PutBucketAclInput => PutBucketAclOutput as "PutBucketAcl";
        put_bucket_analytics_configuration: PutBucketAnalyticsConfigurationInput => PutBucketAnalyticsConfigurationOutput as "PutBucketAnalyticsConfiguration";
        put_bucket_cors: PutBucketCorsInput => PutBucketCorsOutput as "PutBucketCors";
        put_bucket_encryption: PutBucketEncryptionInput => PutBucketEncryptionOutput as "PutBucketEncryption";
        put_bucket_intelligent_tiering_configuration: PutBucketIntelligentTieringConfigurationInput => PutBucketIntelligentTieringConfigurationOutput as "PutBucketIntelligentTieringConfiguration";
        put_bucket_inventory_configuration: PutBucketInventoryConfigurationInput => PutBucketInventoryConfigurationOutput as "PutBucketInventoryConfiguration";
        put_bucket_lifecycle_configuration: PutBucketLifecycleConfigurationInput => PutBucketLifecycleConfigurationOutput as "PutBucketLifecycleConfiguration";
        put_bucket_logging: PutBucketLoggingInput => PutBucketLoggingOutput as "PutBucketLogging";
        put_bucket_metrics_configuration: PutBucketMetricsConfigurationInput => PutBucketMetricsConfigurationOutput as "PutBucketMetricsConfiguration";
        put_bucket_notification_configuration: PutBucketNotificationConfigurationInput => PutBucketNotificationConfigurationOutput as "PutBucketNotificationConfiguration";
        put_bucket_ownership_controls: PutBucketOwnershipControlsInput => PutBucketOwnershipControlsOutput as "PutBucketOwnershipControls";
        put_bucket_policy: PutBucketPolicyInput => PutBucketPolicyOutput as "PutBucketPolicy";
        put_bucket_replication: PutBucketReplicationInput => PutBucketReplicationOutput as "PutBucketReplication";
        put_bucket_request_payment: PutBucketRequestPaymentInput => PutBucketRequestPaymentOutput as "PutBucketRequestPayment";
        put_bucket_tagging: PutBucketTaggingInput => PutBucketTaggingOutput as "PutBucketTagging";
        put_bucket_versioning: PutBucketVersioningInput => PutBucketVersioningOutput as "PutBucketVersioning";
        put_bucket_website: PutBucketWebsiteInput => PutBucketWebsiteOutput as "PutBucketWebsite";
        put_object_lock_configuration: PutObjectLockConfigurationInput => PutObjectLockConfigurationOutput as "PutObjectLockConfiguration";
        put_public_access_block: PutPublicAccessBlockInput => PutPublicAccessBlockOutput as "PutPublicAccessBlock";
        select_object_content: SelectObjectContentInput => SelectObjectContentOutput as "SelectObjectContent";
        upload_part: UploadPartInput => UploadPartOutput as "UploadPart";
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput as "UploadPartCopy";
        write_get_object_response: WriteGetObjectResponseInput => WriteGetObjectResponseOutput as "WriteGetObjectResponse";
    }
}
