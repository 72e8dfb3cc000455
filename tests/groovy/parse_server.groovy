// Parse Groovy files with the Groovy 2.4.21 compiler (the version Jenkins runs), one JVM for many files.
//
// Protocol: one file path per line on stdin; for each, one JSON line on stdout:
//   {"path": ..., "ok": true|false, "errors": [...], "strings": [...], "tree": [...], "methods": [...]}
// "strings" holds every String constant of the AST in source order; "tree" is the nesting of the
// script's statements: method calls (with their arguments and closure bodies), assignments and returns,
// so Python can check the declarative pipeline rules on what the parser really read; "methods" gives the
// same for script-level method definitions (name, parameter names, body).
// Parsing stops at Phases.CONVERSION: a full syntax check without class resolution.
// Output is pure ASCII (non-ASCII written as JSON unicode escapes) so the pipe encoding cannot alter strings.

import groovy.json.JsonOutput
import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.*
import org.codehaus.groovy.ast.stmt.*
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.messages.Message

class StringCollector extends CodeVisitorSupport {
    List<String> found = []
    void visitConstantExpression(ConstantExpression expression) {
        if (expression.value instanceof String) {
            found << (String) expression.value
        }
        super.visitConstantExpression(expression)
    }
}

class TreeBuilder {
    static Object expr(Expression e) {
        if (e instanceof ConstantExpression) {
            return [const: e.value]
        }
        if (e instanceof GStringExpression) {
            return [gstring: e.text]
        }
        if (e instanceof VariableExpression) {
            return [var: e.name]
        }
        if (e instanceof ListExpression) {
            return [list: e.expressions.collect { expr(it) }]
        }
        if (e instanceof MapExpression) {
            return [map: e.mapEntryExpressions.collect { [expr(it.keyExpression), expr(it.valueExpression)] }]
        }
        if (e instanceof ClosureExpression) {
            return [closure: block(e.code)]
        }
        if (e instanceof MethodCallExpression) {
            return call(e)
        }
        if (e instanceof BinaryExpression && e.operation.text == '=') {
            return [assign: expr(e.leftExpression), value: expr(e.rightExpression)]
        }
        if (e instanceof BinaryExpression && e.operation.text == '+') {
            return [plus: [expr(e.leftExpression), expr(e.rightExpression)]]
        }
        return [expr: e.getClass().simpleName, text: e.text]
    }

    static Map call(MethodCallExpression e) {
        List args = []
        Expression arguments = e.arguments
        if (arguments instanceof TupleExpression) {
            arguments.expressions.each { a ->
                if (a instanceof NamedArgumentListExpression) {
                    args << [map: a.mapEntryExpressions.collect { [expr(it.keyExpression), expr(it.valueExpression)] }]
                } else {
                    args << expr(a)
                }
            }
        } else {
            args << expr(arguments)
        }
        Map out = [call: e.methodAsString, implicitThis: e.implicitThis, args: args]
        if (!e.implicitThis) {
            out.receiver = expr(e.objectExpression)
        }
        return out
    }

    static List block(Statement s) {
        List out = []
        if (s instanceof BlockStatement) {
            s.statements.each { out.addAll(block(it)) }
        } else if (s instanceof ExpressionStatement) {
            out << expr(s.expression)
        } else if (s instanceof ReturnStatement) {
            out << [return: expr(s.expression)]
        } else if (s instanceof IfStatement) {
            out << [statement: 'if', condition: expr(s.booleanExpression.expression),
                    blocks: [block(s.ifBlock), block(s.elseBlock)]]
        } else if (s instanceof TryCatchStatement) {
            List blocks = [block(s.tryStatement)]
            s.catchStatements.each { blocks << block(it.code) }
            blocks << block(s.finallyStatement)
            out << [statement: 'try', blocks: blocks]
        } else if (s instanceof EmptyStatement) {
            // nothing: an absent else or finally
        } else {
            out << [statement: s.getClass().simpleName, text: s.text]
        }
        return out
    }
}

static String ascii(String json) {
    StringBuilder sb = new StringBuilder(json.length())
    for (char c : json.toCharArray()) {
        if (c < 0x80) {
            sb.append(c)
        } else {
            sb.append('\\').append('u').append(String.format('%04x', (int) c))
        }
    }
    return sb.toString()
}

static Map parseFile(String path) {
    File file = new File(path)
    CompilerConfiguration config = new CompilerConfiguration()
    config.sourceEncoding = 'UTF-8'
    CompilationUnit unit = new CompilationUnit(config)
    unit.addSource(file)
    try {
        unit.compile(Phases.CONVERSION)
    } catch (CompilationFailedException failure) {
        List errors = []
        unit.errorCollector.errors?.each { Message m ->
            StringWriter w = new StringWriter()
            m.write(new PrintWriter(w))
            errors << w.toString().trim()
        }
        if (errors.isEmpty()) {
            errors << failure.message
        }
        return [path: path, ok: false, errors: errors, strings: [], tree: []]
    }
    List strings = []
    List tree = []
    List methods = []
    unit.iterator().each { source ->
        def module = source.AST
        StringCollector collector = new StringCollector()
        module.methods.each { m ->
            m.code?.visit(collector)
            methods << [name: m.name, params: m.parameters.collect { it.name }, body: TreeBuilder.block(m.code)]
        }
        module.statementBlock.visit(collector)
        strings.addAll(collector.found)
        tree.addAll(TreeBuilder.block(module.statementBlock))
    }
    return [path: path, ok: true, errors: [], strings: strings, tree: tree, methods: methods]
}

BufferedReader input = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
PrintStream output = new PrintStream(new FileOutputStream(FileDescriptor.out), false, 'US-ASCII')
String line
while ((line = input.readLine()) != null) {
    if (line.isEmpty()) {
        continue
    }
    Map result
    try {
        result = parseFile(line)
    } catch (Throwable t) {
        result = [path: line, ok: false, errors: ['harness: ' + t.toString()], strings: [], tree: []]
    }
    output.println(ascii(JsonOutput.toJson(result)))
    output.flush()
}
