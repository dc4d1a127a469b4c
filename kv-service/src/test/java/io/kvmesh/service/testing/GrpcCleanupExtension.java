package io.kvmesh.service.testing;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.testing.GrpcCleanupRule;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.InvocationInterceptor;
import org.junit.jupiter.api.extension.ReflectiveInvocationContext;
import org.junit.runner.Description;
import org.junit.runners.model.Statement;

import java.lang.reflect.Method;

/**
 * grpc-testing's {@link GrpcCleanupRule} for JUnit 5: the test method runs inside the rule, so every server and
 * channel registered (in {@code @BeforeEach} or the test) is shut down, and awaited, when the test ends, failing it
 * if one will not stop. Use as {@code @RegisterExtension final GrpcCleanupExtension grpc = new
 * GrpcCleanupExtension();}.
 */
public final class GrpcCleanupExtension implements InvocationInterceptor {
    private final GrpcCleanupRule rule = new GrpcCleanupRule();

    public <T extends ManagedChannel> T register(T channel) {
        return rule.register(channel);
    }

    public <T extends Server> T register(T server) {
        return rule.register(server);
    }

    @Override
    public void interceptTestMethod(Invocation<Void> invocation, ReflectiveInvocationContext<Method> invocationContext,
                                    ExtensionContext extensionContext) throws Throwable {
        rule.apply(new Statement() {
            @Override
            public void evaluate() throws Throwable {
                invocation.proceed();
            }
        }, Description.createTestDescription(extensionContext.getRequiredTestClass(),
                extensionContext.getDisplayName())).evaluate();
    }

    @Override
    public void interceptTestTemplateMethod(Invocation<Void> invocation,
                                            ReflectiveInvocationContext<Method> invocationContext,
                                            ExtensionContext extensionContext) throws Throwable {
        interceptTestMethod(invocation, invocationContext, extensionContext);
    }
}
