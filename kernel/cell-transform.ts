import ts from "typescript";
import { RUNTIME } from "./io.ts";

/**
 * Cells run as scripts in the kernel's own realm (so arrays, typed arrays and errors from npm
 * packages are the same classes as the cell's). For declarations to outlive their cell, and for a
 * re-run cell to redeclare a `const`, every top-level declaration becomes an assignment to a binding
 * in the global lexical scope, which the kernel declares with `let` the first time a name appears:
 *
 *   const x = 1            ->  x = 1
 *   const {a, b: [c]} = o  ->  ({a, b: [c]} = o)
 *   function f() {}        ->  f = function f() {}   (hoisted to the top of the cell)
 *   class C {}             ->  C = class C {}
 *   import * as m from "m" ->  m = __ktu.module("m")     (loaded by the kernel before the cell runs)
 *
 * The last expression statement becomes the cell's value, and every `await` checks for an interrupt
 * when it resumes, so a long async loop stops at its next await point; every `for await` checks at
 * each step of its iterator.
 */

export interface CellTransformResult {
  /** Value names the cell declares at top level (each needs a global `let`). */
  declared: string[];
  /** Whether the cell ends in an expression whose value is displayed. */
  hasValue: boolean;
  /** Module specifiers of the cell's static imports, in order: the kernel loads them first. */
  imports: string[];
}

/**
 * How a later cell may see a top-level name: a mutable variable ("let": later cells assign to it), a
 * constant, or anything else (function, class, enum, interface, type, namespace, import), which is
 * seen with all its meanings through an import alias.
 */
export type NameKind = "let" | "const" | "alias";

/** Every name a cell declares at top level, types included: what later cells can see. */
export function topLevelNames(sourceFile: ts.SourceFile): Map<string, NameKind> {
  const names = new Map<string, NameKind>();
  const addBinding = (name: ts.BindingName, kind: NameKind): void => {
    if (ts.isIdentifier(name)) names.set(name.text, kind);
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) addBinding(element.name, kind);
  };
  for (const statement of sourceFile.statements) {
    if (ts.isVariableStatement(statement)) {
      const kind = statement.declarationList.flags & ts.NodeFlags.Const ? "const" : "let";
      for (const declaration of statement.declarationList.declarations) addBinding(declaration.name, kind);
    } else if (
      (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement)) &&
      statement.name
    ) {
      names.set(statement.name.text, "alias");
    } else if (ts.isModuleDeclaration(statement) && ts.isIdentifier(statement.name)) {
      names.set(statement.name.text, "alias");
    } else if (ts.isImportDeclaration(statement) && statement.importClause) {
      const clause = statement.importClause;
      if (clause.name) names.set(clause.name.text, "alias");
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) names.set(bindings.name.text, "alias");
      else if (bindings) for (const element of bindings.elements) names.set(element.name.text, "alias");
    } else if (ts.isImportEqualsDeclaration(statement)) {
      names.set(statement.name.text, "alias");
    }
  }
  return names;
}

const f = ts.factory;

/** `{a, b: [c = 1], ...rest}` as a pattern becomes the same shape as an assignment target. */
function bindingToTarget(name: ts.BindingName): ts.Expression {
  if (ts.isIdentifier(name)) return f.createIdentifier(name.text);
  if (ts.isObjectBindingPattern(name)) {
    return f.createObjectLiteralExpression(
      name.elements.map((element) => {
        const target = bindingToTarget(element.name);
        if (element.dotDotDotToken) return f.createSpreadAssignment(target);
        const withDefault = element.initializer ? f.createBinaryExpression(target, ts.SyntaxKind.EqualsToken, element.initializer) : target;
        const key = element.propertyName ?? (ts.isIdentifier(element.name) ? f.createIdentifier(element.name.text) : undefined);
        if (!element.propertyName && ts.isIdentifier(element.name)) {
          return f.createShorthandPropertyAssignment(element.name.text, element.initializer);
        }
        return f.createPropertyAssignment(key as ts.PropertyName, withDefault);
      }),
    );
  }
  return f.createArrayLiteralExpression(
    name.elements.map((element) => {
      if (ts.isOmittedExpression(element)) return f.createOmittedExpression();
      const target = bindingToTarget(element.name);
      if (element.dotDotDotToken) return f.createSpreadElement(target);
      return element.initializer ? f.createBinaryExpression(target, ts.SyntaxKind.EqualsToken, element.initializer) : target;
    }),
  );
}

const assign = (target: ts.Expression, value: ts.Expression, range: ts.TextRange): ts.Statement => {
  const expression = f.createBinaryExpression(target, ts.SyntaxKind.EqualsToken, value);
  // Object-pattern assignments need parentheses to not read as a block.
  const statement = f.createExpressionStatement(ts.isObjectLiteralExpression(target) ? f.createParenthesizedExpression(expression) : expression);
  return ts.setTextRange(statement, range);
};

const runtimeCall = (method: string, args: ts.Expression[]): ts.Expression =>
  f.createCallExpression(f.createPropertyAccessExpression(f.createIdentifier(RUNTIME), method), undefined, args);

// Modules are loaded by the kernel before the cell runs (as ESM loads imports before a module's
// body), so a cell whose only awaits were its imports still runs synchronously, under breakOnSigint.
const importCall = (specifier: ts.Expression): ts.Expression => runtimeCall("module", [specifier]);

/** A transformer for transpileModule's `after` stage (types already stripped). */
export function cellTransformer(result: CellTransformResult): ts.TransformerFactory<ts.SourceFile> {
  return (context) => {
    const checkAwaits = (node: ts.Node): ts.Node => {
      const visited = ts.visitEachChild(node, checkAwaits, context);
      if (ts.isAwaitExpression(visited)) {
        // ck(await aw(x)): aw lets the event loop turn (and a SIGINT in) when the cell has kept it
        // busy for a while; ck throws once the cell is interrupted.
        const awaited = f.updateAwaitExpression(visited, ts.setTextRange(runtimeCall("aw", [visited.expression]), visited.expression));
        return ts.setTextRange(runtimeCall("ck", [awaited]), node);
      }
      // for await (x of iter(source)): each step checks for an interrupt before and while it waits,
      // so a loop over an async generator that computes between yields stops at its next step.
      if (ts.isForOfStatement(visited) && visited.awaitModifier) {
        const source = ts.setTextRange(runtimeCall("iter", [visited.expression]), visited.expression);
        return ts.setTextRange(f.updateForOfStatement(visited, visited.awaitModifier, visited.initializer, source, visited.statement), node);
      }
      return visited;
    };
    return (sourceFile) => {
      const declared = new Set<string>();
      const imports: string[] = [];
      const hoisted: ts.Statement[] = [];
      const body: ts.Statement[] = [];
      const statements = sourceFile.statements;
      const last = statements[statements.length - 1];
      result.hasValue = last !== undefined && ts.isExpressionStatement(last);
      for (const original of statements) {
        const statement = checkAwaits(original) as ts.Statement;
        if (ts.isImportDeclaration(statement)) {
          if (ts.isStringLiteral(statement.moduleSpecifier)) imports.push(statement.moduleSpecifier.text);
          const load = importCall(statement.moduleSpecifier);
          const clause = statement.importClause;
          if (!clause) {
            body.push(ts.setTextRange(f.createExpressionStatement(load), statement));
            continue;
          }
          const bindings = clause.namedBindings;
          if (bindings && ts.isNamespaceImport(bindings)) {
            declared.add(bindings.name.text);
            body.push(assign(f.createIdentifier(bindings.name.text), load, statement));
            if (clause.name) {
              declared.add(clause.name.text);
              body.push(assign(f.createIdentifier(clause.name.text), f.createPropertyAccessExpression(f.createIdentifier(bindings.name.text), "default"), statement));
            }
            continue;
          }
          const properties: ts.ObjectLiteralElementLike[] = [];
          if (clause.name) {
            declared.add(clause.name.text);
            properties.push(f.createPropertyAssignment("default", f.createIdentifier(clause.name.text)));
          }
          for (const element of bindings?.elements ?? []) {
            declared.add(element.name.text);
            properties.push(
              element.propertyName
                ? f.createPropertyAssignment(f.createStringLiteral(element.propertyName.text), f.createIdentifier(element.name.text))
                : f.createShorthandPropertyAssignment(element.name.text),
            );
          }
          body.push(assign(f.createObjectLiteralExpression(properties), load, statement));
        } else if (ts.isVariableStatement(statement)) {
          const isVar = (statement.declarationList.flags & ts.NodeFlags.BlockScoped) === 0;
          for (const declaration of statement.declarationList.declarations) {
            const target = bindingToTarget(declaration.name);
            collectNames(declaration.name, declared);
            if (declaration.initializer) body.push(assign(target, declaration.initializer, declaration));
            else if (!isVar && ts.isIdentifier(declaration.name)) body.push(assign(target, f.createIdentifier("undefined"), declaration));
          }
        } else if (ts.isFunctionDeclaration(statement) && statement.name && statement.body) {
          declared.add(statement.name.text);
          const modifiers = statement.modifiers?.filter((m) => m.kind === ts.SyntaxKind.AsyncKeyword) as ts.Modifier[] | undefined;
          const expression = f.createFunctionExpression(modifiers, statement.asteriskToken, statement.name.text, undefined, statement.parameters, undefined, statement.body);
          hoisted.push(assign(f.createIdentifier(statement.name.text), ts.setTextRange(expression, statement), statement));
        } else if (ts.isClassDeclaration(statement) && statement.name) {
          declared.add(statement.name.text);
          const expression = f.createClassExpression(
            statement.modifiers?.filter((m) => ts.isDecorator(m)),
            statement.name.text,
            undefined,
            statement.heritageClauses,
            statement.members,
          );
          body.push(assign(f.createIdentifier(statement.name.text), ts.setTextRange(expression, statement), statement));
        } else if (ts.isExportDeclaration(statement)) {
          continue;
        } else if (ts.isExportAssignment(statement)) {
          body.push(ts.setTextRange(f.createExpressionStatement(statement.expression), statement));
        } else if (original === last && ts.isExpressionStatement(statement)) {
          // An array, so that a returned promise is shown as a promise rather than awaited.
          body.push(ts.setTextRange(f.createReturnStatement(f.createArrayLiteralExpression([statement.expression])), statement));
        } else {
          body.push(statement);
        }
      }
      result.declared = [...declared];
      result.imports = imports;
      return f.updateSourceFile(sourceFile, [...hoisted, ...body]);
    };
  };
}

function collectNames(name: ts.BindingName, into: Set<string>): void {
  if (ts.isIdentifier(name)) into.add(name.text);
  else for (const element of name.elements) if (!ts.isOmittedExpression(element)) collectNames(element.name, into);
}
